// Adaptive group commit for usage events: a row is written one event-loop turn after the writer
// was idle (with the rows of the requests read in that turn); rows arriving while a commit is in
// flight wait and go together in the next statement (at most BATCH). Every caller is answered only after its statement committed: nothing is
// acknowledged before it is durable.
//
// A batch is one statement of fixed text (arrays through unnest), prepared once per connection:
// the usage rows and their outbox rows are inserted together, atomically, in one round trip.
//
// Publishing: when no webhook wants usage.recorded, the outbox rows are written claimed
// (published_at = '-infinity') and the writer publishes the events itself right after the commit,
// then deletes the rows: no relay transaction per batch, no second write of each row. The outbox
// row stays what makes delivery at-least-once: claimed rows a writer did not get rid of (a crash,
// a silent bus) are handed back to the relay (OutboxRelay.reclaim). Rows a webhook wants are
// written unclaimed, so the relay enqueues their deliveries in its transaction as for every event.
// With an in-process bus (one instance, e.g. the embedded default) no row is written for events
// no webhook wants: nobody else could take them over, and the subscribers end with the process.
import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { usageEvents, webhooks } from '../../../schema/index.ts'
import { eventTopic, payloadSql } from '../../events/domain-events.ts'
import type { PublishedEvent } from '../../events/outbox-relay.ts'
import { pgErrorCode, queryRows, type Db, type Executor } from '../../infra/database.ts'
import type { IEventBus } from '../../infra/event-bus.ts'
import { eventTypeSql, webhookWants } from '../webhooks/webhook-match.ts'

export type UsageInsert = typeof usageEvents.$inferInsert
export type UsageRow = typeof usageEvents.$inferSelect

const BATCH = 500

const USAGE_RECORDED = eventTypeSql('usage.recorded')
/** The outbox payload of a row of `u` (below): what publish() builds for the same row. */
const USAGE_PAYLOAD = payloadSql('usage.recorded', {
  id: sql`id`,
  seq: sql`seq`,
  serialId: sql`serial_id`,
  clientId: sql`client_id`,
  deviceId: sql`device_id`,
  kind: sql`kind`,
  quantity: sql`quantity`,
  feature: sql`feature`,
  recordedAt: sql`to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
})

/** The stored row, as the insert left it (the writer fills every defaulted column itself). */
export function storedUsage (row: UsageInsert, seq: number): UsageRow {
  return { id: row.id!, seq, serialId: row.serialId, clientId: row.clientId, deviceId: row.deviceId, kind: row.kind ?? 'USAGE', quantity: row.quantity ?? 1, feature: row.feature ?? null, ip: row.ip ?? null, recordedAt: row.recordedAt ?? new Date() }
}

interface Pending { row: UsageInsert, resolve: (row: UsageRow) => void, reject: (error: unknown) => void }

export interface UsageWriter {
  write (row: UsageInsert): Promise<UsageRow>
  /** Deletes (or hands back) what was published; call before the database closes. */
  close (): Promise<void>
}

/** What the batch statement stored for one row; outboxId null when no outbox row was written. */
export interface StoredUsage { seq: number, outboxId: number | null, claimed: boolean }

/**
 * What becomes of a row's outbox event when no webhook wants it: `relay` leaves it to the relay,
 * `claim` marks it for the writer to publish, `skip` writes none (an in-process bus: no other
 * instance could take it over, and this process's subscribers end with it).
 */
export type OutboxMode = 'relay' | 'claim' | 'skip'

/**
 * Inserts the rows, one `usage.recorded` outbox event each (payload: the event as subscribers see
 * it, every column but ip, recordedAt as ISO 8601 in UTC) and their share of the analytics
 * rollups (usage_daily, usage_client_hourly, usage_device_days). With `claim`, outbox rows no
 * webhook wants are written claimed for the caller to publish after commit. Returns id → stored.
 */
export async function insertUsageBatch (db: Executor, rows: UsageInsert[], mode: OutboxMode = 'relay'): Promise<Map<string, StoredUsage>> {
  const column = <T>(pick: (r: UsageInsert) => T) => sql.param(rows.map(pick))
  const result = await queryRows<{ id: string, seq: string | number, outbox_id: string | number | null, claimed: boolean }>(db, sql`
    with u as (
      insert into usage_events (id, serial_id, client_id, device_id, kind, quantity, feature, ip, recorded_at)
      select * from unnest(${column((r) => r.id)}::text[], ${column((r) => r.serialId)}::text[], ${column((r) => r.clientId)}::text[],
        ${column((r) => r.deviceId)}::text[], ${column((r) => r.kind ?? 'USAGE')}::text[], ${column((r) => r.quantity ?? 1)}::int[],
        ${column((r) => r.feature ?? null)}::text[], ${column((r) => r.ip ?? null)}::text[], ${column((r) => (r.recordedAt ?? new Date()).toISOString())}::timestamptz[])
      returning id, seq, serial_id, client_id, device_id, kind, quantity, feature, recorded_at
    ), daily as (
      insert into usage_daily (serial_id, client_id, day, events, quantity)
      select serial_id, min(client_id), date_trunc('day', recorded_at, 'UTC'), count(*), sum(quantity) from u group by 1, 3 order by 1, 3
      on conflict (serial_id, day) do update set events = usage_daily.events + excluded.events, quantity = usage_daily.quantity + excluded.quantity
    ), hourly as (
      insert into usage_client_hourly (client_id, hour, events, quantity)
      select client_id, date_trunc('hour', recorded_at, 'UTC'), count(*), sum(quantity) from u group by 1, 2 order by 1, 2
      on conflict (client_id, hour) do update set events = usage_client_hourly.events + excluded.events, quantity = usage_client_hourly.quantity + excluded.quantity
    ), device_days as (
      insert into usage_device_days (serial_id, client_id, day, device_id)
      select distinct serial_id, client_id, date_trunc('day', recorded_at, 'UTC'), device_id from u
      on conflict do nothing
    ), wanted as (
      select u.id, exists (select 1 from ${webhooks} where ${webhookWants(USAGE_RECORDED, sql`u.client_id`)}) as by_webhook
      from u
    ), o as (
      insert into outbox (type, aggregate_id, client_id, payload, published_at)
      select ${USAGE_RECORDED}, serial_id, client_id, ${USAGE_PAYLOAD},
        case when ${mode}::text = 'claim' and not wanted.by_webhook then '-infinity'::timestamptz end
      from u join wanted using (id)
      where ${mode}::text <> 'skip' or wanted.by_webhook
      order by seq
      returning id, payload->>'id' as usage_id, published_at is not null as claimed
    )
    select u.id, u.seq, o.id as outbox_id, coalesce(o.claimed, true) as claimed from u left join o on o.usage_id = u.id`)
  return new Map(result.map((r) => [r.id, { seq: Number(r.seq), outboxId: r.outbox_id === null ? null : Number(r.outbox_id), claimed: r.claimed }]))
}

/** How long published outbox ids wait to be deleted together (ms). */
const CLEANUP_MS = 50

export interface UsageWriterDeps { db: Db, bus: IEventBus, log: FastifyBaseLogger, kick: () => void }

export function createUsageWriter ({ db, bus, log, kick }: UsageWriterDeps): UsageWriter {
  const mode: OutboxMode = bus.kind === 'memory' ? 'skip' : 'claim'
  const queue: Pending[] = []
  let flushing = false
  /** Claimed outbox rows whose events went out: deleted in one statement. */
  const published: number[] = []
  /** Claimed outbox rows whose events could not go out: handed to the relay. */
  const unsent: number[] = []
  let cleanupTimer: NodeJS.Timeout | undefined
  let cleaning: Promise<void> | undefined
  /** Publishes not yet settled, awaited by close(). */
  const publishing = new Set<Promise<void>>()
  let closed = false

  async function cleanup (): Promise<void> {
    cleanupTimer = undefined
    const done = published.splice(0)
    const back = unsent.splice(0)
    try {
      // Only rows still claimed: one the relay took back meanwhile (a publish slower than the
      // claim timeout) is the relay's, and re-opening it would send it twice.
      if (done.length > 0) await db.execute(sql`delete from outbox where id = any(${sql.param(done)}::bigint[]) and published_at = '-infinity'::timestamptz`)
      if (back.length > 0) {
        await db.execute(sql`update outbox set published_at = null where id = any(${sql.param(back)}::bigint[]) and published_at = '-infinity'::timestamptz`)
        kick()
      }
    } catch (error) {
      // The rows stay claimed; the relay takes them back after CLAIM_TIMEOUT (at least once).
      log.warn({ err: error }, 'usage outbox cleanup failed; the relay will re-send those events')
    }
  }

  function scheduleCleanup (): void {
    if (closed) return
    cleanupTimer ??= setTimeout(() => { cleaning = cleanup().finally(() => { cleaning = undefined }) }, CLEANUP_MS)
  }

  function publish (batch: Pending[], stored: Map<string, StoredUsage>): void {
    const events: Array<PublishedEvent<'usage.recorded'>> = []
    let unclaimed = false
    const createdAt = new Date().toISOString()
    for (const p of batch) {
      const s = stored.get(p.row.id!)!
      if (!s.claimed) { unclaimed = true; continue }
      const { ip: _ip, recordedAt, ...rest } = storedUsage(p.row, s.seq)
      // Without an outbox row (skip mode) the event carries id 0: only webhooks read the id, and
      // events a webhook wants always have a row.
      events.push({ id: s.outboxId ?? 0, type: 'usage.recorded', aggregateId: rest.serialId, clientId: rest.clientId, payload: { ...rest, recordedAt: recordedAt.toISOString() }, createdAt })
    }
    if (unclaimed) kick()
    if (events.length === 0) return
    const ids = events.flatMap((e) => e.id === 0 ? [] : [e.id])
    if (!bus.healthy()) { unsent.push(...ids); scheduleCleanup(); return }
    const sending: Promise<void> = Promise.all(events.map((e) => bus.publish(eventTopic('usage.recorded', e.clientId), e))).then(
      () => { published.push(...ids); scheduleCleanup() },
      (error: unknown) => { log.warn({ err: error }, 'usage events not published; handing them to the relay'); unsent.push(...ids); scheduleCleanup() })
      .finally(() => { publishing.delete(sending) })
    publishing.add(sending)
  }

  /**
   * One event-loop turn: the requests already read by this turn join the batch. PGlite runs each
   * statement synchronously on this thread, so no request is even parsed while one runs; without
   * this pause every batch would hold the one row that woke the writer.
   */
  const gather = () => new Promise<void>((resolve) => setImmediate(resolve))

  async function flush (): Promise<void> {
    flushing = true
    try {
      await gather()
      while (queue.length > 0) {
        const batch = queue.splice(0, BATCH)
        try {
          const rows = batch.map((p) => p.row)
          // Rollup rows are shared by concurrent writers; a deadlock between two instances'
          // batches aborts one statement (nothing stored), which is then tried once more.
          const stored = await insertUsageBatch(db, rows, mode).catch((error: unknown) => {
            if (pgErrorCode(error) === '40P01') return insertUsageBatch(db, rows, mode)
            throw error
          })
          for (const p of batch) p.resolve(storedUsage(p.row, stored.get(p.row.id!)!.seq))
          publish(batch, stored)
        } catch (error) {
          for (const p of batch) p.reject(error)
        }
        await gather()
      }
    } finally {
      flushing = false
    }
  }

  return {
    write (row) {
      return new Promise<UsageRow>((resolve, reject) => {
        queue.push({ row, resolve, reject })
        if (!flushing) void flush()
      })
    },
    async close () {
      // Publishes still under way settle first, then one last cleanup; nothing is scheduled after.
      await Promise.allSettled([...publishing])
      closed = true
      if (cleanupTimer) { clearTimeout(cleanupTimer); cleanupTimer = undefined }
      await cleaning
      await cleanup()
    }
  }
}
