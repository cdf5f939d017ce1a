// Every background job, and the one schedule that runs them: a timer per job, never two runs of one
// job at once, failures logged with the job's name (a job is retried at its next period), and a
// stop that waits for the runs under way.
import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/config.ts'
import type { ApiKeyService } from '../domain/api-keys/api-key-service.ts'
import type { DeviceService } from '../domain/devices/device-service.ts'
import type { ValidationRecorder } from '../domain/validation/validation-recorder.ts'
import type { WebhookService } from '../domain/webhooks/webhook-service.ts'
import type { OutboxRelay } from '../events/outbox-relay.ts'
import type { AdvisoryLock } from '../infra/advisory-locks.ts'
import { queryRows, type Db, type Executor, type IDatabase } from '../infra/database.ts'
import type { Metrics } from '../infra/metrics.ts'
import { deliverWebhooksJob } from './deliver-webhooks.ts'
import { flushKeyLastUsedJob } from './flush-key-last-used.ts'
import { flushValidationStatsJob } from './flush-validation-stats.ts'
import type { Job, JobOutcome } from './job.ts'
import { maintainUsagePartitionsJob } from './maintain-usage-partitions.ts'
import { pruneActivationsJob } from './prune-activations.ts'
import { pruneIdempotencyKeysJob } from './prune-idempotency-keys.ts'
import { pruneOutboxJob } from './prune-outbox.ts'
import { refreshGaugesJob } from './refresh-gauges.ts'
import { refreshRevokedKeysJob } from './refresh-revoked-keys.ts'
import { relayOutboxJob } from './relay-outbox.ts'
import { sweepExpiriesJob } from './sweep-expiries.ts'
import { sweepLeasesJob } from './sweep-leases.ts'

/** What the composition root built (app.deps has this shape), and a logger. */
export interface JobDeps {
  config: Pick<Config, 'expiryWarningDays' | 'usageRetentionDays'>
  database: Pick<IDatabase, 'db' | 'readDb'>
  metrics: Metrics
  relay: OutboxRelay
  recorder: ValidationRecorder
  services: { devices: DeviceService, webhooks: WebhookService, apiKeys: ApiKeyService }
  log: FastifyBaseLogger
}

/** The one list of background jobs. */
export function createJobs ({ config, database, metrics, relay, recorder, services, log }: JobDeps): Job[] {
  const { db, readDb } = database
  const { devices, webhooks, apiKeys } = services
  return [
    relayOutboxJob({ relay }),
    pruneOutboxJob({ relay }),
    deliverWebhooksJob({ webhooks }),
    flushValidationStatsJob({ recorder }),
    flushKeyLastUsedJob({ apiKeys }),
    refreshRevokedKeysJob({ revokedKeys: apiKeys.revokedKeys }),
    // The replica when there is one: a scrape's numbers need not be a commit fresh.
    refreshGaugesJob({ db: readDb, metrics }),
    sweepLeasesJob({ devices }),
    sweepExpiriesJob({ expiryWarningDays: config.expiryWarningDays, eventsWritten: () => relay.kick() }),
    pruneActivationsJob({ devices }),
    pruneIdempotencyKeysJob({ db }),
    maintainUsagePartitionsJob({ db, log, retentionDays: config.usageRetentionDays })
  ]
}

async function tryLock (tx: Executor, key: AdvisoryLock): Promise<boolean> {
  const [row] = await queryRows<{ locked: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${sql.raw(String(key))}) as locked`)
  return row?.locked === true
}

export interface RunOptions {
  /** Where a locked job's transaction runs. */
  db: Db
  now?: Date
  /** Checked between batches (JobOutcome.more): true = leave the rest to the next run. */
  stopping?: () => boolean
}

/**
 * One run of a job, batch after batch while it reports more; a locked job's batches each in a
 * transaction of their own. Resolves false when another instance held the lock (nothing was run).
 * Throws what the job throws: startSchedule logs it, a test sees it.
 */
export async function runJob (job: Job, { db, now = new Date(), stopping = () => false }: RunOptions): Promise<boolean> {
  for (let batch = 0; ; batch++) {
    let outcome: JobOutcome | undefined | null
    if (job.lock === undefined) {
      outcome = await job.run({ now })
    } else {
      const { lock, run } = job
      outcome = await db.transaction(async (tx) => await tryLock(tx, lock) ? await run({ now, tx }) : null)
    }
    if (outcome === null) return batch > 0
    await outcome?.afterCommit?.()
    if (!outcome?.more || stopping()) return true
  }
}

export interface ScheduleOptions {
  db: Db
  log: FastifyBaseLogger
  clock?: () => Date
}

/** Starts a timer per job (unref'd: they never keep the process alive); returns the stop function. */
export function startSchedule (jobs: readonly Job[], { db, log, clock = () => new Date() }: ScheduleOptions): () => Promise<void> {
  const names = jobs.map((j) => j.name)
  const twice = names.find((name, i) => names.indexOf(name) !== i)
  if (twice) throw new Error(`job ${twice} is scheduled twice`)
  let stopping = false
  const running = new Map<Job, Promise<void>>()

  function tick (job: Job): void {
    // A run still going when its next period comes: that period is skipped.
    if (stopping || running.has(job)) return
    const run = runJob(job, { db, now: clock(), stopping: () => stopping })
      .then(() => {}, (error: unknown) => { log.warn({ err: error, job: job.name }, `job ${job.name} failed`) })
      .finally(() => { running.delete(job) })
    running.set(job, run)
  }

  const timers = jobs.map((job) => {
    const timer = setInterval(() => tick(job), job.everyMs)
    timer.unref()
    return timer
  })
  for (const job of jobs) if (job.runAtStart) tick(job)

  return async () => {
    stopping = true
    for (const timer of timers) clearInterval(timer)
    await Promise.all(running.values())
  }
}
