// Idempotent requests. A call first claims (scope, key) with its request's hash, in a statement of
// its own, before any of its work runs; only the call holding the claim does the work, and it
// stores its answer in the transaction of the work's writes. Any other call with the key does
// nothing but answer: a different request is a CONFLICT at once; the same request waits for the
// first answer and replays it. No connection is held while waiting, so work that needs other
// connections (validation, activation) can run between the claim and the answer.
import { and, eq, isNull, lt } from 'drizzle-orm'
import { idempotencyKeys } from '../../schema/index.ts'
import { sha256Hex } from './crypto.ts'
import type { Executor, IDatabase } from './database.ts'
import { ConflictError, ValidationError } from '../kernel/errors.ts'
import { canonicalJson } from '../../packages/client/src/verify.ts'
import { idempotencyKeyInput } from '../kernel/input.ts'

/** How long a key is remembered, in ms. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000
/** How long a retry waits for the first request's answer before answering CONFLICT, in ms. */
export const IDEMPOTENCY_WAIT_MS = 30_000
/**
 * A claim without an answer after this long, in ms, belongs to a request whose process died: a
 * retry of the same request takes it over (and the first one, should it still finish, stores nothing).
 */
export const IDEMPOTENCY_CLAIM_TIMEOUT_MS = 5 * 60_000

export interface IdempotencyCodec<T> { encode (value: T): unknown, decode (stored: unknown): T }

export interface IdempotentWork<T, P> {
  /**
   * Runs first, only in the call holding the key, outside the answer's transaction (e.g. a
   * validation that activates a device). `{ answer }` ends the call with that answer, not stored:
   * the key is released and a retry runs again. `{ then }` hands its value to `write`.
   */
  prepare?: () => Promise<{ answer: T } | { then: P }>
  /** The effects, in the transaction that stores the answer. */
  write: (tx: Executor, prepared: P) => Promise<T>
  codec?: IdempotencyCodec<T>
}

const identity: IdempotencyCodec<never> = { encode: (v) => v, decode: (v) => v as never }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function withIdempotency<T, P = undefined> (
  deps: { database: IDatabase, eventsWritten: () => void },
  scope: string,
  key: string,
  request: unknown,
  work: IdempotentWork<T, P>
): Promise<T> {
  // Every caller (REST header, GraphQL input field, CLI) passes through here: bound the key before it
  // reaches the unique index, whose rows PostgreSQL caps at about 2.7 KB.
  const checked = idempotencyKeyInput.safeParse(key)
  if (!checked.success) throw new ValidationError('Validation failed', [{ field: 'idempotencyKey', message: checked.error.issues[0]?.message ?? 'is invalid' }])
  const { db } = deps.database
  const codec = (work.codec ?? identity) as IdempotencyCodec<T>
  const requestHash = sha256Hex(canonicalJson(request))
  const thisKey = and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key))

  // The claim: the row's created_at (milliseconds, written here) tells this claim from a later
  // takeover, so only the holder's answer or release ever applies.
  let claim: Date | undefined
  for (let wait = 5, deadline = Date.now() + IDEMPOTENCY_WAIT_MS; claim === undefined; wait = Math.min(wait * 2, 100)) {
    const at = new Date()
    const inserted = await db.insert(idempotencyKeys).values({ scope, key, requestHash, createdAt: at }).onConflictDoNothing().returning({ key: idempotencyKeys.key })
    if (inserted.length > 0) { claim = at; break }
    const [row] = await db.select().from(idempotencyKeys).where(thisKey).limit(1)
    if (!row) continue // released in between: claim again
    if (row.requestHash !== requestHash) throw new ConflictError(`idempotency key ${key} was used for a different request`)
    if (row.response !== null) return codec.decode(row.response)
    if (row.createdAt.getTime() < at.getTime() - IDEMPOTENCY_CLAIM_TIMEOUT_MS) {
      const taken = await db.update(idempotencyKeys).set({ createdAt: at })
        .where(and(thisKey, isNull(idempotencyKeys.response), eq(idempotencyKeys.createdAt, row.createdAt))).returning({ key: idempotencyKeys.key })
      if (taken.length > 0) { claim = at; break }
      continue
    }
    if (Date.now() > deadline) throw new ConflictError(`idempotency key ${key} is in use by a request still running`)
    await sleep(wait)
  }

  const mine = and(thisKey, isNull(idempotencyKeys.response), eq(idempotencyKeys.createdAt, claim))
  const release = () => db.delete(idempotencyKeys).where(mine).then(() => {}, () => {})
  let value: T
  try {
    const prepared = work.prepare ? await work.prepare() : { then: undefined as P }
    if ('answer' in prepared) {
      await release()
      return prepared.answer
    }
    value = await db.transaction(async (tx) => {
      const written = await work.write(tx, prepared.then)
      const stored = await tx.update(idempotencyKeys).set({ response: codec.encode(written) as object }).where(mine).returning({ key: idempotencyKeys.key })
      // Taken over meanwhile (this request outlived the claim timeout): its writes roll back.
      if (stored.length === 0) throw new ConflictError(`idempotency key ${key} was taken over by a retry`)
      return written
    })
  } catch (error) {
    await release()
    throw error
  }
  deps.eventsWritten()
  return value
}

export async function pruneIdempotencyKeys (db: Executor, now: Date): Promise<void> {
  await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, new Date(now.getTime() - IDEMPOTENCY_TTL_MS)))
}
