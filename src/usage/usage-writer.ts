// Adaptive group commit for usage events: a row is written at once when the writer is idle;
// rows arriving while a commit is in flight wait and go together in the next transaction (at
// most BATCH). Every caller is answered only after its transaction committed: nothing is
// acknowledged before it is durable.
//
// A batch is one statement of fixed text (arrays through unnest), prepared once per connection:
// the usage rows and their outbox rows are inserted together, atomically, in one round trip.
import { sql } from 'drizzle-orm'
import { usageEvents } from '../../schema/index.ts'
import { queryRows, type Db, type Executor } from '../platform/database.ts'

export type UsageInsert = typeof usageEvents.$inferInsert
export type UsageRow = typeof usageEvents.$inferSelect

const BATCH = 500

/** The stored row, as the insert left it (the writer fills every defaulted column itself). */
export function storedUsage (row: UsageInsert, seq: number): UsageRow {
  return { id: row.id!, seq, serialId: row.serialId, clientId: row.clientId, deviceId: row.deviceId, kind: row.kind ?? 'USAGE', quantity: row.quantity ?? 1, feature: row.feature ?? null, ip: row.ip ?? null, recordedAt: row.recordedAt ?? new Date() }
}

interface Pending { row: UsageInsert, resolve: (row: UsageRow) => void, reject: (error: unknown) => void }

export interface UsageWriter { write (row: UsageInsert): Promise<UsageRow> }

/**
 * Inserts the rows, one `usage.recorded` outbox event each (payload: the event as subscribers see
 * it, every column but ip, recordedAt as ISO 8601 in UTC) and their share of the analytics
 * rollups (usage_daily, usage_client_hourly, usage_device_days). Returns id → seq.
 */
export async function insertUsageBatch (db: Executor, rows: UsageInsert[]): Promise<Map<string, number>> {
  const column = <T>(pick: (r: UsageInsert) => T) => sql.param(rows.map(pick))
  const result = await queryRows<{ id: string, seq: string | number }>(db, sql`
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
    ), o as (
      insert into outbox (type, aggregate_id, client_id, payload)
      select 'usage.recorded', serial_id, client_id, jsonb_build_object(
        'id', id, 'seq', seq, 'serialId', serial_id, 'clientId', client_id, 'deviceId', device_id, 'kind', kind,
        'quantity', quantity, 'feature', feature, 'recordedAt', to_char(recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
      from u order by seq
    )
    select id, seq from u`)
  return new Map(result.map((r) => [r.id, Number(r.seq)]))
}

export function createUsageWriter (db: Db, committed: () => void): UsageWriter {
  const queue: Pending[] = []
  let flushing = false

  async function flush (): Promise<void> {
    flushing = true
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, BATCH)
        try {
          const rows = batch.map((p) => p.row)
          // Rollup rows are shared by concurrent writers; a deadlock between two instances'
          // batches aborts one statement (nothing stored), which is then tried once more.
          const seqs = await insertUsageBatch(db, rows).catch((error: { code?: string }) => {
            if (error?.code === '40P01') return insertUsageBatch(db, rows)
            throw error
          })
          committed()
          for (const p of batch) p.resolve(storedUsage(p.row, seqs.get(p.row.id!)!))
        } catch (error) {
          for (const p of batch) p.reject(error)
        }
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
    }
  }
}
