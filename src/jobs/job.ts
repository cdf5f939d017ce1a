// A background job: one periodic task, started from schedule.ts with all the others. A job with a
// `lock` runs inside a transaction holding that advisory lock (pg_try_advisory_xact_lock), so with
// any number of instances one runs it at a time; an instance finding the lock held skips that run.
import type { AdvisoryLock } from '../infra/advisory-locks.ts'
import type { Executor } from '../infra/database.ts'

export interface JobContext {
  /** The schedule's clock when the run began; the same for every batch of one run. */
  now: Date
}

export interface LockedJobContext extends JobContext {
  /** The transaction holding the job's lock; it commits when run resolves, rolls back if it throws. */
  tx: Executor
}

/** What a run may hand back to the schedule (nothing: done). */
export interface JobOutcome {
  /**
   * A full batch was handled: run again at once (a locked job in a new transaction, the lock taken
   * anew). The schedule stops going on when it is stopped; the rest waits for the next run.
   */
  more?: boolean
  /** Called once the run's transaction committed (e.g. in-memory state other instances hold). */
  afterCommit?: () => Promise<void> | void
}

interface JobBase {
  /** kebab-case, as the file: shown in logs. */
  name: string
  /** Period in ms; a tick that finds the previous run still going is skipped. */
  everyMs: number
  /** Also run once when the schedule starts (otherwise the first run is one period later). */
  runAtStart?: boolean
}

export interface UnlockedJob extends JobBase {
  lock?: undefined
  run: (ctx: JobContext) => Promise<JobOutcome | undefined>
}

export interface LockedJob extends JobBase {
  lock: AdvisoryLock
  run: (ctx: LockedJobContext) => Promise<JobOutcome | undefined>
}

export type Job = UnlockedJob | LockedJob
