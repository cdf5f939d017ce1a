// recordUsage: validate first (a new device takes a free slot), then store the event and its
// outbox row in one transaction before acknowledging.
import { and, asc, desc, eq, gt, inArray } from 'drizzle-orm'
import { z } from 'zod'
import { usageEvents } from '../../../schema/index.ts'
import { canSeeClient, type Actor, type RequestMeta } from '../../kernel/access.ts'
import type { Executor } from '../../infra/database.ts'
import type { Deps } from '../deps.ts'
import { newId } from '../../kernel/ids.ts'
import { withIdempotency } from '../../infra/idempotency.ts'
import { createUsageWriter, insertUsageBatch, storedUsage } from './usage-writer.ts'
import { idempotencyKeyInput, parseInput } from '../../kernel/input.ts'
import type { ValidationCode } from '../validation/validation-rules.ts'
import { deviceIdSchema } from '../serials/serial-state.ts'
import type { ValidationService } from '../validation/validation-service.ts'

export interface UsageEventView {
  id: string
  seq: number
  serialId: string
  clientId: string
  deviceId: string
  kind: string
  quantity: number
  feature: string | null
  recordedAt: Date | string
}

export interface RecordUsageResult { recorded: boolean, code: ValidationCode, usageEvent: UsageEventView | null }

const recordInput = z.object({
  serialNumber: z.string().max(64),
  deviceId: deviceIdSchema,
  quantity: z.number().int().min(1).max(1_000_000).optional().nullable(),
  feature: z.string().trim().min(1).max(64).regex(/^[\x20-\x7E]+$/, 'must be printable ASCII').optional().nullable(),
  idempotencyKey: idempotencyKeyInput.optional().nullable()
})

/** How many missed events a resuming subscriber may replay. */
export const MAX_REPLAY = 1000

export function toUsageView (row: typeof usageEvents.$inferSelect): UsageEventView {
  const { ip: _ip, ...rest } = row
  return rest
}

export function createUsageService (deps: Deps & { validation: Pick<ValidationService, 'validate'> }) {
  const { database, clock, metrics } = deps
  // Requests without an idempotency key share transactions (group commit); keyed ones keep their
  // own transaction, which also holds the idempotency row.
  const writer = createUsageWriter({ db: database.preparedDb, bus: deps.bus, log: deps.log, kick: deps.eventsWritten })

  return {
    /** Finishes the writer's bookkeeping of published events; before the database closes. */
    close: () => writer.close(),

    async record (input: unknown, meta: RequestMeta | undefined, headerKey?: string): Promise<RecordUsageResult> {
      const data = parseInput(recordInput, input)
      const { result, serial } = await deps.validation.validate({ serialNumber: data.serialNumber, deviceId: data.deviceId })
      if (!result.valid || !serial) return { recorded: false, code: result.code, usageEvent: null }

      const insert = {
        id: newId('use'),
        serialId: serial.id,
        clientId: serial.clientId,
        deviceId: data.deviceId,
        kind: 'USAGE',
        quantity: data.quantity ?? 1,
        feature: data.feature ?? null,
        ip: meta?.ip ?? null,
        recordedAt: clock()
      }
      const write = async (exec: Executor): Promise<RecordUsageResult> => {
        // In the caller's transaction: the relay publishes it after commit.
        const stored = await insertUsageBatch(exec, [insert])
        return { recorded: true, code: 'VALID', usageEvent: toUsageView(storedUsage(insert, stored.get(insert.id)!.seq)) }
      }

      const key = headerKey ?? data.idempotencyKey ?? undefined
      const request = { deviceId: data.deviceId, quantity: data.quantity ?? 1, feature: data.feature ?? null }
      const recorded = key
        ? await withIdempotency(deps, `usage:${serial.id}`, key, request, write)
        : { recorded: true, code: 'VALID' as const, usageEvent: toUsageView(await writer.write(insert)) }
      metrics.usageEvents.inc()
      return recorded
    },

    /** Events after a sequence number, for subscribers resuming after a disconnect. */
    async since (filter: { clientId?: string | null, serialId?: string | null }, afterSeq: number, limit = MAX_REPLAY): Promise<UsageEventView[]> {
      const where = [gt(usageEvents.seq, afterSeq)]
      if (filter.clientId) where.push(eq(usageEvents.clientId, filter.clientId))
      if (filter.serialId) where.push(eq(usageEvents.serialId, filter.serialId))
      const rows = await database.db.select().from(usageEvents).where(and(...where)).orderBy(asc(usageEvents.seq)).limit(limit)
      return rows.map(toUsageView)
    },

    /** The highest seq stored (0 when none): where a live subscription without `after` starts. */
    async latestSeq (): Promise<number> {
      const [row] = await database.db.select({ seq: usageEvents.seq }).from(usageEvents).orderBy(desc(usageEvents.seq)).limit(1)
      return row?.seq ?? 0
    },

    /** Batch load by id (GraphQL node/nodes): in the order of ids, null where absent or not visible to the actor. */
    async loadMany (actor: Actor, ids: readonly string[]): Promise<Array<UsageEventView | null>> {
      // By id, on the primary: an id just returned by a write must resolve (no replica lag).
      const rows = await database.db.select().from(usageEvents).where(inArray(usageEvents.id, [...ids]))
      const byId = new Map(rows.map((r) => [r.id, r]))
      return ids.map((id) => {
        const row = byId.get(id)
        return row && canSeeClient(actor, row.clientId) ? toUsageView(row) : null
      })
    }
  }
}

export type UsageService = ReturnType<typeof createUsageService>
