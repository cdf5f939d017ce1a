// Business gauges for /metrics, computed by a periodic query and cached: a scrape never scans tables.
import { sql } from 'drizzle-orm'
import { queryRows, type Db } from '../infra/database.ts'
import type { Metrics } from '../infra/metrics.ts'
import type { UnlockedJob } from './job.ts'

export const GAUGE_REFRESH_MS = 15_000

export async function refreshGauges (db: Db, metrics: Metrics): Promise<void> {
  const [row] = await queryRows<{ serials: string | number, devices: string | number, clients: string | number, outbox: string | number }>(db, sql`
    select
      (select count(*) from serials where status = 'ACTIVE' and (expires_at is null or expires_at > now())) as serials,
      (select coalesce(sum(active_devices), 0) from serials) as devices,
      (select count(*) from clients) as clients,
      (select count(*) from outbox where published_at is null or published_at = '-infinity'::timestamptz) as outbox`)
  if (!row) return
  metrics.activeSerials.set(Number(row.serials))
  metrics.activeDevices.set(Number(row.devices))
  metrics.clients.set(Number(row.clients))
  metrics.outboxPending.set(Number(row.outbox))
}

/** At start-up too, so the first scrape has values. */
export function refreshGaugesJob ({ db, metrics }: { db: Db, metrics: Metrics }): UnlockedJob {
  return {
    name: 'refresh-gauges',
    everyMs: GAUGE_REFRESH_MS,
    runAtStart: true,
    async run () { await refreshGauges(db, metrics) }
  }
}
