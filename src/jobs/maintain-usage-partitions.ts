// usage_events' monthly partitions: the coming months created ahead, and with USAGE_RETENTION_DAYS
// the months past it dropped (the rollups keep their history). partitions.ts takes its own lock for
// each change, so instances may run this at once. At start-up too: a service down over a month's
// turn gets that month's partition at once (until then its rows wait, safely, in DEFAULT).
import type { FastifyBaseLogger } from 'fastify'
import { dropExpiredUsagePartitions, ensureUsagePartitions, type EnsureReport, type RetentionReport } from '../domain/usage/partitions.ts'
import type { Db } from '../infra/database.ts'
import type { UnlockedJob } from './job.ts'

const DAY_MS = 86_400_000

export interface PartitionDeps {
  db: Db
  log: FastifyBaseLogger
  /** USAGE_RETENTION_DAYS; undefined = keep every month. */
  retentionDays: number | undefined
}

/** One run; retention null when USAGE_RETENTION_DAYS is unset. */
export async function maintainUsagePartitions ({ db, log, retentionDays }: PartitionDeps, now: Date): Promise<{ ensured: EnsureReport, retention: RetentionReport | null }> {
  // A failure here (a lock not granted in time) leaves writes safe in the DEFAULT partition and
  // is retried at the next run; retention still runs.
  const ensured = await ensureUsagePartitions(db, now).catch((error: unknown): EnsureReport => {
    log.warn({ err: error }, 'usage partitions: creating the coming months failed; retried at the next run')
    return { created: [], moved: 0 }
  })
  if (ensured.created.length > 0) log.info({ created: ensured.created, moved: ensured.moved }, 'usage partitions created')
  const retention = retentionDays === undefined ? null : await dropExpiredUsagePartitions(db, now, retentionDays)
  if (retention && retention.dropped.length > 0) {
    log.info({ dropped: retention.dropped, cutoff: retention.cutoff.toISOString(), retentionDays }, 'usage partitions dropped (USAGE_RETENTION_DAYS); rollups kept')
  }
  return { ensured, retention }
}

export function maintainUsagePartitionsJob (deps: PartitionDeps): UnlockedJob {
  return {
    name: 'maintain-usage-partitions',
    everyMs: DAY_MS,
    runAtStart: true,
    async run ({ now }) { await maintainUsagePartitions(deps, now) }
  }
}
