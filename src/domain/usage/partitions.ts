// Monthly partitions of usage_events (declarative partitioning on recorded_at, UTC months, named
// usage_events_YYYY_MM; the migration usage_partitions made the table partitioned). The service
// creates the current month and the next 2 ahead of time, so writes land in a month's partition;
// usage_events_default takes any row no month holds yet, so a write never fails for lack of a
// partition. With USAGE_RETENTION_DAYS, whole months past it are dropped (the rollups stay).
//
// Safe with any number of instances at once: each change runs in a transaction holding one
// advisory lock and re-reads the partitions under it. Lock waits are bounded (LOCK_TIMEOUT), so a
// long query holding the table never makes writers queue behind a partition change: the change
// fails, and the next run (daily, and at start-up) tries again, months ahead of need.
import { sql } from 'drizzle-orm'
import { ADVISORY_LOCKS } from '../../infra/advisory-locks.ts'
import { queryRows, type Db, type Executor } from '../../infra/database.ts'

export const PARENT = 'usage_events'
export const DEFAULT_PARTITION = 'usage_events_default'
/** Months created after the current one. */
export const MONTHS_AHEAD = 2
const LOCK_TIMEOUT = '3s'
const DAY_MS = 86_400_000
const COLUMNS = sql.raw('id, seq, serial_id, client_id, device_id, kind, quantity, feature, ip, recorded_at')

export interface UsagePartition {
  name: string
  /** Inclusive lower bound; null for the DEFAULT partition (or a MINVALUE bound). */
  from: Date | null
  /** Exclusive upper bound; null for the DEFAULT partition (or a MAXVALUE bound). */
  to: Date | null
}

export interface EnsureReport {
  /** Partitions created, oldest first. */
  created: string[]
  /** Rows moved out of the DEFAULT partition into the partitions created. */
  moved: number
}

export interface RetentionReport {
  /** recorded_at before which whole months were dropped. */
  cutoff: Date
  dropped: string[]
}

/** Start of the UTC month holding `time`, shifted by `months`. */
export function monthStart (time: Date, months = 0): Date {
  return new Date(Date.UTC(time.getUTCFullYear(), time.getUTCMonth() + months, 1))
}

export function partitionName (month: Date): string {
  return `${PARENT}_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`
}

/**
 * The partitions of usage_events with their bounds, oldest first (DEFAULT last). Bounds are read
 * from the catalog (printed with their UTC offset, so the session's TimeZone does not matter).
 */
export async function listUsagePartitions (db: Executor): Promise<UsagePartition[]> {
  const rows = await queryRows<{ name: string, bound: string, from: string | Date | null, to: string | Date | null }>(db, sql`
    select c.relname as name, b.bound,
      (regexp_match(b.bound, 'FROM [(]''([^'']+)''[)]'))[1]::timestamptz as "from",
      (regexp_match(b.bound, 'TO [(]''([^'']+)''[)]'))[1]::timestamptz as "to"
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
    cross join lateral (select pg_get_expr(c.relpartbound, c.oid) as bound) b
    where i.inhparent = ${PARENT}::regclass
    order by 3 nulls last, 1`)
  return rows.map((r) => ({ name: r.name, from: r.from === null ? null : new Date(r.from), to: r.to === null ? null : new Date(r.to) }))
}

async function lockPartitions (tx: Executor): Promise<void> {
  await tx.execute(sql.raw(`set local lock_timeout = '${LOCK_TIMEOUT}'`))
  await tx.execute(sql`select pg_advisory_xact_lock(${sql.raw(String(ADVISORY_LOCKS.usagePartitions))})`)
}

/** Whether a (non-DEFAULT) partition covers part of [from, to); a missing bound is MINVALUE / MAXVALUE. */
const overlaps = (p: UsagePartition, from: Date, to: Date) =>
  p.name !== DEFAULT_PARTITION && (p.from === null || p.from < to) && (p.to === null || p.to > from)

/**
 * Creates the partition of one month unless a partition already covers it. Rows of that month
 * waiting in the DEFAULT partition are moved into it (the DEFAULT partition is locked meanwhile,
 * so no row of the month can slip in between). Returns the rows moved, or null when it existed.
 */
async function createMonth (db: Db, month: Date): Promise<number | null> {
  const from = month
  const to = monthStart(month, 1)
  const name = partitionName(month)
  return db.transaction(async (tx) => {
    await lockPartitions(tx)
    const partitions = await listUsagePartitions(tx)
    if (partitions.some((p) => overlaps(p, from, to))) return null
    const table = sql.identifier(name)
    const hasDefault = partitions.some((p) => p.name === DEFAULT_PARTITION)
    // Built apart, filled, then attached: ATTACH takes a weaker lock on the parent than CREATE
    // TABLE … PARTITION OF, so reads and writes of other months go on meanwhile.
    await tx.execute(sql`create table ${table} (like ${sql.identifier(PARENT)} including defaults)`)
    let moved = 0
    if (hasDefault) {
      await tx.execute(sql`lock table ${sql.identifier(DEFAULT_PARTITION)} in access exclusive mode`)
      const rows = await queryRows<{ n: string | number }>(tx, sql`
        with moved as (
          delete from ${sql.identifier(DEFAULT_PARTITION)} where recorded_at >= ${from.toISOString()}::timestamptz and recorded_at < ${to.toISOString()}::timestamptz
          returning ${COLUMNS}
        ), copied as (insert into ${table} (${COLUMNS}) select ${COLUMNS} from moved returning 1)
        select count(*) as n from copied`)
      moved = Number(rows[0]?.n ?? 0)
    }
    await tx.execute(sql`alter table ${sql.identifier(PARENT)} attach partition ${table}
      for values from (${sql.raw(`'${from.toISOString()}'`)}) to (${sql.raw(`'${to.toISOString()}'`)})`)
    return moved
  })
}

/**
 * Makes sure the month of `now` and the next MONTHS_AHEAD months have their partitions, and gives
 * months whose rows wait in the DEFAULT partition (written before their month existed, restored
 * from a backup) a partition of their own; recreates the DEFAULT partition if it is missing.
 * Idempotent; concurrent calls create each partition once.
 */
export async function ensureUsagePartitions (db: Db, now: Date): Promise<EnsureReport> {
  const wanted = new Map<number, Date>()
  for (let i = 0; i <= MONTHS_AHEAD; i++) wanted.set(monthStart(now, i).getTime(), monthStart(now, i))
  const partitions = await listUsagePartitions(db)
  if (partitions.some((p) => p.name === DEFAULT_PARTITION)) {
    const waiting = await queryRows<{ m: string }>(db, sql`
      select distinct to_char(date_trunc('month', recorded_at at time zone 'UTC'), 'YYYY-MM') as m from ${sql.identifier(DEFAULT_PARTITION)}`)
    for (const { m } of waiting) {
      const month = new Date(`${m}-01T00:00:00Z`)
      wanted.set(month.getTime(), month)
    }
  }
  const report: EnsureReport = { created: [], moved: 0 }
  if (!partitions.some((p) => p.name === DEFAULT_PARTITION)) {
    // Dropped by hand? Without it, a row of a month with no partition could not be written.
    const made = await db.transaction(async (tx) => {
      await lockPartitions(tx)
      if ((await listUsagePartitions(tx)).some((p) => p.name === DEFAULT_PARTITION)) return false
      await tx.execute(sql`create table ${sql.identifier(DEFAULT_PARTITION)} partition of ${sql.identifier(PARENT)} default`)
      return true
    })
    if (made) report.created.push(DEFAULT_PARTITION)
  }
  for (const month of [...wanted.values()].sort((a, b) => a.getTime() - b.getTime())) {
    if (partitions.some((p) => overlaps(p, month, monthStart(month, 1)))) continue
    const moved = await createMonth(db, month)
    if (moved === null) continue
    report.created.push(partitionName(month))
    report.moved += moved
  }
  return report
}

/**
 * Drops the monthly partitions whose every row is older than `now − retentionDays` (upper bound at
 * or before the cut-off). Never the DEFAULT partition. The rollups (usage_daily,
 * usage_client_hourly, usage_device_days) are separate tables and keep those months' history.
 */
export async function dropExpiredUsagePartitions (db: Db, now: Date, retentionDays: number): Promise<RetentionReport> {
  const cutoff = new Date(now.getTime() - retentionDays * DAY_MS)
  const report: RetentionReport = { cutoff, dropped: [] }
  const expired = (p: UsagePartition) => p.name !== DEFAULT_PARTITION && p.to !== null && p.to <= cutoff
  for (const candidate of (await listUsagePartitions(db)).filter(expired)) {
    const dropped = await db.transaction(async (tx) => {
      await lockPartitions(tx)
      const current = (await listUsagePartitions(tx)).find((p) => p.name === candidate.name)
      if (!current || !expired(current)) return false
      // The bound already guarantees it; checked anyway, since dropping rows cannot be undone.
      const [newer] = await queryRows<{ any: boolean }>(tx, sql`
        select exists (select 1 from ${sql.identifier(current.name)} where recorded_at >= ${cutoff.toISOString()}::timestamptz) as any`)
      if (newer?.any) return false
      await tx.execute(sql`drop table ${sql.identifier(current.name)}`)
      return true
    })
    if (dropped) report.dropped.push(candidate.name)
  }
  return report
}
