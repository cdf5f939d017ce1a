// Idempotent requests: the first answer is stored under (scope, key) in the transaction that did
// the work. A retry, even one racing the first request, waits on the unique key and replays it.
import { and, eq, lt } from 'drizzle-orm'
import { idempotencyKeys } from '../../schema/index.ts'
import { sha256Hex } from './crypto.ts'
import type { Executor, IDatabase } from './database.ts'
import { ConflictError, ValidationError } from '../kernel/errors.ts'
import { canonicalJson } from '../../packages/client/src/verify.ts'
import { idempotencyKeyInput } from '../kernel/input.ts'

/** How long a key is remembered, in ms. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000

export interface IdempotencyCodec<T> { encode (value: T): unknown, decode (stored: unknown): T }

export async function withIdempotency<T> (
  deps: { database: IDatabase, eventsWritten: () => void },
  scope: string,
  key: string,
  request: unknown,
  run: (tx: Executor) => Promise<T>,
  codec: IdempotencyCodec<T> = { encode: (v) => v, decode: (v) => v as T }
): Promise<T> {
  // Every caller (REST header, GraphQL input field, CLI) passes through here: bound the key before it
  // reaches the unique index, whose rows PostgreSQL caps at about 2.7 KB.
  const checked = idempotencyKeyInput.safeParse(key)
  if (!checked.success) throw new ValidationError('Validation failed', [{ field: 'idempotencyKey', message: checked.error.issues[0]?.message ?? 'is invalid' }])
  const requestHash = sha256Hex(canonicalJson(request))
  const result = await deps.database.db.transaction(async (tx) => {
    const inserted = await tx.insert(idempotencyKeys).values({ scope, key, requestHash }).onConflictDoNothing().returning({ key: idempotencyKeys.key })
    if (inserted.length === 0) {
      const [row] = await tx.select().from(idempotencyKeys).where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key))).limit(1)
      if (!row || row.response === null) throw new ConflictError(`idempotency key ${key} is in use by a request still running`)
      if (row.requestHash !== requestHash) throw new ConflictError(`idempotency key ${key} was used for a different request`)
      return { replay: true, value: codec.decode(row.response) }
    }
    const value = await run(tx)
    await tx.update(idempotencyKeys).set({ response: codec.encode(value) as object })
      .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)))
    return { replay: false, value }
  })
  if (!result.replay) deps.eventsWritten()
  return result.value
}

export async function pruneIdempotencyKeys (db: Executor, now: Date): Promise<void> {
  await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, new Date(now.getTime() - IDEMPOTENCY_TTL_MS)))
}
