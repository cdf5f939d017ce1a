// Background lifecycle work, safe with any number of instances running it: culling lapsed
// leases, serial.expiring / serial.expired notices, pruning old activation rows, usage_events'
// monthly partitions (created ahead; dropped past USAGE_RETENTION_DAYS). Each task runs
// in a transaction holding its own advisory lock (one instance at a time), and every event is
// claimed by a conditional update in the same transaction, so each is raised exactly once.
import { sql } from 'drizzle-orm'
import type { DeviceService } from '../domain/devices/device-service.ts'
import { queryRows, type Executor } from '../infra/database.ts'
import type { Deps } from '../domain/deps.ts'
import { dropExpiredUsagePartitions, ensureUsagePartitions, type EnsureReport, type RetentionReport } from '../domain/usage/partitions.ts'
import { SWEEP_INTERVAL_MS } from '../domain/policies/lease-rules.ts'

const CULL_LOCK = 727_014
const EXPIRY_LOCK = 727_015
/** Serials one notice statement claims; the loop goes on until none is left. */
const NOTICE_BATCH = 500
const DAY_MS = 86_400_000

export interface LifecycleScheduler {
  /** Frees lapsed leases; resolves with how many were culled (0 when another instance holds the lock). */
  sweepLeases (): Promise<number>
  /** Raises due serial.expiring and serial.expired events; resolves with how many. */
  sweepExpiries (): Promise<number>
  /**
   * Creates the coming months' usage_events partitions and, when USAGE_RETENTION_DAYS is set,
   * drops the months past it (retention null when unset). Runs at start-up, then daily.
   */
  maintainUsagePartitions (): Promise<{ ensured: EnsureReport, retention: RetentionReport | null }>
  /** Starts the timers; returns a stop function that waits for a running sweep. */
  start (): () => Promise<void>
}

async function tryLock (tx: Executor, key: number): Promise<boolean> {
  const [row] = await queryRows<{ locked: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${sql.raw(String(key))}) as locked`)
  return row?.locked === true
}

export function createLifecycleScheduler (deps: Deps & { devices: DeviceService }): LifecycleScheduler {
  const { database, clock, config, log } = deps
  const db = database.db
  const warningMs = config.expiryWarningDays * DAY_MS

  async function sweepLeases (): Promise<number> {
    const now = clock()
    const culled = await db.transaction(async (tx) => {
      if (!await tryLock(tx, CULL_LOCK)) return []
      return deps.devices.cullLapsedIn(tx, now)
    })
    await deps.devices.forgetCulled(culled)
    return culled.length
  }

  /** One notice kind: claims due serials (the flag goes from null to now) and writes their events. */
  async function notice (tx: Executor, kind: 'serial.expiring' | 'serial.expired', now: Date): Promise<number> {
    const column = sql.raw(kind === 'serial.expiring' ? 'expiring_notified_at' : 'expired_notified_at')
    // Expiring: within the warning window and not yet expired (a serial found already expired gets
    // only serial.expired). SKIP LOCKED: a serial being changed right now is taken next time.
    const due = kind === 'serial.expiring'
      ? sql`expires_at > ${now.toISOString()}::timestamptz and expires_at <= ${new Date(now.getTime() + warningMs).toISOString()}::timestamptz`
      : sql`expires_at <= ${now.toISOString()}::timestamptz`
    const rows = await queryRows<{ id: string }>(tx, sql`
      with claimed as (
        update serials set ${column} = ${now.toISOString()}::timestamptz
        where id in (select id from serials where ${column} is null and status <> 'REVOKED' and expires_at is not null and ${due}
                     order by expires_at limit ${NOTICE_BATCH} for update skip locked)
        returning id, client_id, expires_at
      )
      insert into outbox (type, aggregate_id, client_id, payload)
      select ${kind}::text, id, client_id, jsonb_build_object('serialId', id, 'clientId', client_id, 'expiresAt', expires_at) from claimed order by id
      returning aggregate_id as id`)
    return rows.length
  }

  async function sweepExpiries (): Promise<number> {
    const now = clock()
    let total = 0
    for (;;) {
      const n = await db.transaction(async (tx) => {
        if (!await tryLock(tx, EXPIRY_LOCK)) return 0
        return await notice(tx, 'serial.expired', now) + await notice(tx, 'serial.expiring', now)
      })
      total += n
      if (n < NOTICE_BATCH) break
    }
    if (total > 0) deps.eventsWritten()
    return total
  }

  async function maintainUsagePartitions (): Promise<{ ensured: EnsureReport, retention: RetentionReport | null }> {
    const now = clock()
    // A failure here (a lock not granted in time) leaves writes safe in the DEFAULT partition and
    // is retried at the next run; retention still runs.
    const ensured = await ensureUsagePartitions(db, now).catch((error: unknown): EnsureReport => {
      log.warn({ err: error }, 'usage partitions: creating the coming months failed; retried at the next run')
      return { created: [], moved: 0 }
    })
    if (ensured.created.length > 0) log.info({ created: ensured.created, moved: ensured.moved }, 'usage partitions created')
    const days = config.usageRetentionDays
    const retention = days === undefined ? null : await dropExpiredUsagePartitions(db, now, days)
    if (retention && retention.dropped.length > 0) {
      log.info({ dropped: retention.dropped, cutoff: retention.cutoff.toISOString(), retentionDays: days }, 'usage partitions dropped (USAGE_RETENTION_DAYS); rollups kept')
    }
    return { ensured, retention }
  }

  return {
    sweepLeases,
    sweepExpiries,
    maintainUsagePartitions,
    start () {
      let running: Promise<unknown> = Promise.resolve()
      const run = (task: () => Promise<unknown>) => () => {
        running = running.then(task).catch((error: unknown) => log.warn({ err: error }, 'lifecycle task failed'))
      }
      const timers = [
        setInterval(run(sweepLeases), SWEEP_INTERVAL_MS),
        setInterval(run(sweepExpiries), 60_000),
        setInterval(run(() => deps.devices.pruneActivations(clock())), 3_600_000),
        setInterval(run(maintainUsagePartitions), DAY_MS)
      ]
      for (const t of timers) t.unref()
      // At start-up too: a service down over a month's turn gets that month's partition at once
      // (until then its rows wait, safely, in the DEFAULT partition).
      run(maintainUsagePartitions)()
      return async () => {
        for (const t of timers) clearInterval(t)
        await running
      }
    }
  }
}
