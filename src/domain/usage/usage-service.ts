// recordUsage: validate first (a new device takes a free slot), then store the event and its
// outbox row in one transaction before acknowledging. With an idempotency key, the key is claimed
// before the validation: a retry or a conflicting reuse of the key has no effect.
import { and, asc, desc, eq, gt, inArray, lte, sql } from 'drizzle-orm'
import { z } from 'zod'
import { serials, usageEvents } from '../../../schema/index.ts'
import { canSeeClient, type Actor, type RequestMeta } from '../../kernel/access.ts'
import type { Deps } from '../deps.ts'
import { newId } from '../../kernel/ids.ts'
import { withIdempotency } from '../../infra/idempotency.ts'
import { createUsageWriter, insertUsageBatch, storedUsage } from './usage-writer.ts'
import type { PublishedEvent } from '../../events/outbox-relay.ts'
import { createUsageFeed, type FeedFilter, type FeedScope, type LiveUsage } from './usage-feed.ts'
import { idempotencyKeyInput, parseInput } from '../../kernel/input.ts'
import type { ValidationCode } from '../validation/validation-rules.ts'
import { deviceIdSchema } from '../serials/serial-state.ts'
import { normaliseSerialNumber } from '../serials/serial-number.ts'
import { lookupHash } from '../../infra/crypto.ts'
import type { SerialState } from '../cached-state.ts'
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

/** The API's rules for each stored field; import (domain/operations) applies them to imported rows too. */
export const USAGE_FIELDS = { quantity: recordInput.shape.quantity, feature: recordInput.shape.feature }

/** How many missed events a resuming subscriber may replay. */
export const MAX_REPLAY = 1000

export function toUsageView (row: typeof usageEvents.$inferSelect): UsageEventView {
  const { ip: _ip, ...rest } = row
  return rest
}

export function createUsageService (deps: Deps & { validation: Pick<ValidationService, 'validate'> }) {
  const { database, clock, metrics, config } = deps
  // Requests without an idempotency key share transactions (group commit); keyed ones keep their
  // own transaction, which also holds the idempotency row.
  const writer = createUsageWriter({ db: database.preparedDb, bus: deps.bus, log: deps.log, kick: deps.eventsWritten })

  /** The id of the serial a number names (the scope of its idempotency keys), without validating it. */
  async function serialIdOf (serialNumber: string): Promise<string | undefined> {
    const normalised = normaliseSerialNumber(serialNumber)
    if (!normalised) return undefined
    const [row] = await database.lookupDb.select({ id: serials.id }).from(serials).where(eq(serials.numberHash, lookupHash(config.pepper, normalised))).limit(1)
    return row?.id
  }

  /**
   * Rows after `after` up to `through` for the open subscriptions' filters. On the primary (a
   * replica may lag), one statement of fixed text (arrays as parameters), prepared once per connection.
   */
  async function readScope (scope: FeedScope, after: number, through: number, limit: number): Promise<UsageEventView[]> {
    const rows = await database.preparedDb.select().from(usageEvents).where(and(gt(usageEvents.seq, after), lte(usageEvents.seq, through),
      sql`(${scope.all}::boolean or ${usageEvents.clientId} = any(${sql.param(scope.clientIds)}::text[]) or ${usageEvents.serialId} = any(${sql.param(scope.serialIds)}::text[]))`))
      .orderBy(asc(usageEvents.seq)).limit(limit)
    return rows.map(toUsageView)
  }
  const feed = createUsageFeed<UsageEventView>({
    db: database.preparedDb,
    bus: deps.bus,
    log: deps.log,
    read: readScope,
    // The payload is the stored row without its ip (insertUsageBatch, usage-writer.ts).
    fromBus: (message) => (message as PublishedEvent | undefined)?.type === 'usage.recorded' ? (message as PublishedEvent<'usage.recorded'>).payload : undefined
  })

  return {
    /** Ends the live subscriptions and finishes the writer's bookkeeping of published events; before the database closes. */
    async close () {
      await feed.close()
      await writer.close()
    },

    /** Live usage of a filter in seq order, each event once (see usage-feed.ts). */
    live: (filter: FeedFilter): Promise<LiveUsage<UsageEventView>> => feed.open(filter),

    /** A seq safe to resume after: every usage row at or below it is committed or never will be (usage-feed.ts). */
    watermark: (): Promise<number> => feed.watermark(),

    async record (input: unknown, meta: RequestMeta | undefined, headerKey?: string): Promise<RecordUsageResult> {
      const data = parseInput(recordInput, input)
      const key = headerKey ?? data.idempotencyKey ?? undefined
      /** The validation (a new device takes a slot): the serial when VALID, else the answer. */
      const validate = async (): Promise<{ answer: RecordUsageResult } | { then: SerialState }> => {
        const { result, serial } = await deps.validation.validate({ serialNumber: data.serialNumber, deviceId: data.deviceId })
        return result.valid && serial ? { then: serial } : { answer: { recorded: false, code: result.code, usageEvent: null } }
      }
      const insertFor = (serial: SerialState) => ({
        id: newId('use'),
        serialId: serial.id,
        clientId: serial.clientId,
        deviceId: data.deviceId,
        kind: 'USAGE',
        quantity: data.quantity ?? 1,
        feature: data.feature ?? null,
        ip: meta?.ip ?? null,
        recordedAt: clock()
      })

      let recorded: RecordUsageResult
      if (!key) {
        const validated = await validate()
        if ('answer' in validated) return validated.answer
        recorded = { recorded: true, code: 'VALID', usageEvent: toUsageView(await writer.write(insertFor(validated.then))) }
      } else {
        // The key is checked before the validation, which may activate the device: a retry or a
        // call reusing the key for another request does nothing but answer.
        const serialId = await serialIdOf(data.serialNumber)
        // Not a serial (malformed or unknown number): the validation answers, with no effect to repeat.
        const early = serialId ? undefined : await validate()
        if (early && 'answer' in early) return early.answer
        const request = { deviceId: data.deviceId, quantity: data.quantity ?? 1, feature: data.feature ?? null }
        recorded = await withIdempotency<RecordUsageResult, SerialState>(deps, `usage:${serialId ?? early!.then.id}`, key, request, {
          prepare: early ? async () => early : validate,
          // In the transaction that stores the answer: the relay publishes the event after commit.
          write: async (tx, serial) => {
            const insert = insertFor(serial)
            const stored = await insertUsageBatch(tx, [insert])
            return { recorded: true, code: 'VALID', usageEvent: toUsageView(storedUsage(insert, stored.get(insert.id)!.seq)) }
          }
        })
      }
      if (recorded.recorded) metrics.usageEvents.inc()
      return recorded
    },

    /** Events after a sequence number (up to `through`), for subscribers resuming after a disconnect. */
    async since (filter: { clientId?: string | null, serialId?: string | null }, afterSeq: number, limit = MAX_REPLAY, through?: number): Promise<UsageEventView[]> {
      const where = [gt(usageEvents.seq, afterSeq)]
      if (through !== undefined) where.push(lte(usageEvents.seq, through))
      if (filter.clientId) where.push(eq(usageEvents.clientId, filter.clientId))
      if (filter.serialId) where.push(eq(usageEvents.serialId, filter.serialId))
      const rows = await database.db.select().from(usageEvents).where(and(...where)).orderBy(asc(usageEvents.seq)).limit(limit)
      return rows.map(toUsageView)
    },

    /** The highest seq stored (0 when none). Not a resume cursor: a lower seq may still commit (use watermark). */
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
