// Rebuilds the analytics rollups from the raw tables. The service keeps them current as it writes
// (usage writer, validation flusher); this is for data written around the service: the rollup
// migration's backfill holds the same statements, and bench/seed-analytics.ts runs them after
// seeding in SQL.
import { sql } from 'drizzle-orm'
import { ADVISORY_LOCKS } from '../../infra/advisory-locks.ts'
import type { Db } from '../../infra/database.ts'

// validation_client_minutely is not rebuilt here: validation_stats holds hours, not minutes. The
// minute table is a 48-hour window the flusher alone writes and prunes.
//
// USAGE_RETENTION_DAYS drops whole months of usage_events while the rollups keep their history
// (docs/operations.md), so the usage rollups are rebuilt only from the first day (hour) that still
// has raw rows: older rollup rows have no raw rows left to be recomputed from and are kept as they
// are. With no raw rows at all, nothing is deleted. validation_stats is never pruned.
const FIRST_EVENT = sql`(select min(recorded_at) from usage_events)`
export const REBUILD_ROLLUPS = [
  sql`delete from usage_daily where day >= date_trunc('day', ${FIRST_EVENT}, 'UTC')`,
  sql`insert into usage_daily (serial_id, client_id, day, events, quantity)
    select serial_id, min(client_id), date_trunc('day', recorded_at, 'UTC'), count(*), sum(quantity)
    from usage_events group by serial_id, date_trunc('day', recorded_at, 'UTC')`,
  sql`delete from usage_client_hourly where hour >= date_trunc('hour', ${FIRST_EVENT}, 'UTC')`,
  sql`insert into usage_client_hourly (client_id, hour, events, quantity)
    select client_id, date_trunc('hour', recorded_at, 'UTC'), count(*), sum(quantity)
    from usage_events group by client_id, date_trunc('hour', recorded_at, 'UTC')`,
  sql`delete from usage_device_days where day >= date_trunc('day', ${FIRST_EVENT}, 'UTC')`,
  sql`insert into usage_device_days (serial_id, client_id, day, device_id)
    select distinct serial_id, client_id, date_trunc('day', recorded_at, 'UTC'), device_id from usage_events`,
  sql`delete from validation_client_hourly`,
  sql`insert into validation_client_hourly (client_id, hour, code, count)
    select client_id, hour, code, sum(count) from validation_stats group by client_id, hour, code`
]

/** One transaction: a failure half-way leaves the rollups as they were, never emptied. */
export async function rebuildRollups (db: Db): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.rollupRebuild})`)
    for (const statement of REBUILD_ROLLUPS) await tx.execute(statement)
  })
}
