// Relays committed outbox rows to the event bus: at least once, in commit order, one relay at a
// time across all instances (advisory lock), rows marked published in the same transaction. The
// relay's own statements carry no parameters (constants inline), so each is one round trip.
import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { ADVISORY_LOCKS } from '../infra/advisory-locks.ts'
import { queryRows, type Db, type Executor } from '../infra/database.ts'
import type { IEventBus } from '../infra/event-bus.ts'
import { eventTopic, type DomainEvent, type DomainEventType } from './domain-events.ts'

const BATCH = 500
/** A kick waits this long, so the commits of a busy moment share one relay transaction. */
const KICK_DELAY_MS = 5
/**
 * Rows claimed by a usage writer (published_at '-infinity', see usage-writer.ts) that are still
 * there after this long were not published by it (a crash, a silent bus): the relay takes them.
 */
export const CLAIM_TIMEOUT_S = 10
/** Published rows are kept this long for inspection, in ms. */
export const OUTBOX_RETENTION_MS = 7 * 86_400_000

/** A domain event as the bus carries it: still discriminated by `type` (narrow on it to read the payload). */
export type PublishedEvent<T extends DomainEventType = DomainEventType> = DomainEvent<T> & {
  /** outbox.id (0 for a usage event published without a row, see usage-writer.ts) */
  id: number
  createdAt: string
}

/** Runs inside the relay's transaction for every batch (e.g. to enqueue webhook deliveries). */
export type BatchHook = (tx: Executor, events: PublishedEvent[]) => Promise<void>

export interface OutboxRelay {
  kick (): void
  /** Publishes everything pending now; resolves with the number of rows published. */
  drain (): Promise<number>
  addHook (hook: BatchHook): void
  /** Hands claimed rows older than CLAIM_TIMEOUT_S back to the relay; resolves with their number. */
  reclaim (): Promise<number>
  /** Deletes rows published more than OUTBOX_RETENTION_MS before `now`. */
  prune (now: Date): Promise<void>
  /** Drains whenever the bus is heard again. The periodic poll and prune are jobs (src/jobs/). */
  start (): void
  stop (): Promise<void>
}

export function createOutboxRelay ({ db, bus, log }: { db: Db, bus: IEventBus, log: FastifyBaseLogger }): OutboxRelay {
  const hooks: BatchHook[] = []
  let running: Promise<number> | undefined
  let again = false
  let stopped = false
  let kickTimer: NodeJS.Timeout | undefined
  let stopHealth = () => {}

  async function runOnce (): Promise<number> {
    // While the bus is silent a publish would fail (rolling the batch back) or, worse, succeed in
    // part: wait for it to be heard again, then send the backlog in order. Subscribers that missed
    // messages meanwhile re-read them from the database (usageRecorded), so nothing is lost.
    if (!bus.healthy()) return 0
    return db.transaction(async (tx) => {
      const [lock] = await queryRows<{ locked: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${sql.raw(String(ADVISORY_LOCKS.outboxRelay))}) as locked`)
      if (!lock?.locked) return 0
      const rows = await queryRows<{ id: string | number, type: DomainEventType, aggregate_id: string, client_id: string | null, payload: Record<string, unknown>, created_at: Date | string }>(tx,
        sql`update outbox set published_at = now()
          where id in (select id from outbox where published_at is null order by id limit ${sql.raw(String(BATCH))} for update skip locked)
          returning id, type, aggregate_id, client_id, payload, created_at`)
      if (rows.length === 0) return 0
      rows.sort((a, b) => Number(a.id) - Number(b.id))
      // The outbox holds what writeEvents and the SQL writers (typed by payloadSql) put there: each
      // row's payload is its type's, which is what this one assertion at the boundary states.
      const events = rows.map((r) => ({
        id: Number(r.id),
        type: r.type,
        aggregateId: r.aggregate_id,
        clientId: r.client_id,
        payload: typeof r.payload === 'string' ? JSON.parse(r.payload) as unknown : r.payload,
        createdAt: new Date(r.created_at).toISOString()
      }) as PublishedEvent)
      for (const hook of hooks) await hook(tx, events)
      // Marked in this transaction, which commits only after the bus took every event: a crash in
      // between rolls the marks back and the events go out again (at least once).
      await Promise.all(events.map((e) => bus.publish(eventTopic(e.type, e.clientId), e)))
      return events.length
    })
  }

  async function loop (): Promise<number> {
    let total = 0
    do {
      again = false
      try {
        let n: number
        do { n = await runOnce(); total += n } while (n === BATCH && !stopped)
      } catch (error) {
        log.warn({ err: error }, 'outbox relay failed; will retry')
      }
    } while (again && !stopped)
    return total
  }

  function drain (): Promise<number> {
    if (running) { again = true; return running }
    running = loop().finally(() => { running = undefined })
    return running
  }

  async function reclaim (): Promise<number> {
    const rows = await queryRows<{ id: string }>(db, sql`update outbox set published_at = null
      where published_at = '-infinity'::timestamptz and created_at < now() - interval '${sql.raw(String(CLAIM_TIMEOUT_S))} seconds' returning id`)
    return rows.length
  }

  return {
    reclaim,
    async prune (now) {
      await db.execute(sql`delete from outbox where published_at > '-infinity'::timestamptz and published_at < ${new Date(now.getTime() - OUTBOX_RETENTION_MS).toISOString()}::timestamptz`)
    },
    kick () {
      if (stopped || kickTimer) return
      kickTimer = setTimeout(() => { kickTimer = undefined; void drain() }, KICK_DELAY_MS)
    },
    drain,
    addHook (hook) { hooks.push(hook) },
    start () {
      stopHealth = bus.onHealthChange((healthy) => { if (healthy && !stopped) void drain() })
    },
    async stop () {
      stopped = true
      stopHealth()
      if (kickTimer) clearTimeout(kickTimer)
      await running
    }
  }
}
