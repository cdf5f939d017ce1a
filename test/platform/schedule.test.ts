// The background schedule: one timer per job, never two runs of one job at once, failures logged
// with the job's name, a stop that waits for the runs under way; locked jobs skipped while another
// instance holds their advisory lock; and one advisory-lock table whose keys are distinct.
import { existsSync } from 'node:fs'
import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import t from 'tap'
import { ADVISORY_LOCKS } from '../../src/infra/advisory-locks.ts'
import { queryRows, type Db } from '../../src/infra/database.ts'
import type { Job, LockedJob } from '../../src/jobs/job.ts'
import { createJobs, runJob, startSchedule } from '../../src/jobs/schedule.ts'
import { build, databaseUrl } from '../helper.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function recordingLog () {
  const warnings: Array<{ job?: string, message: string }> = []
  const log = { warn: (fields: { job?: string }, message: string) => { warnings.push({ job: fields.job, message }) } } as unknown as FastifyBaseLogger
  return { log, warnings }
}

/** Unlocked jobs never touch the database the schedule is given. */
const noDb = {} as Db

t.test('advisory-lock keys are distinct', async (t) => {
  const values = Object.values(ADVISORY_LOCKS)
  t.equal(new Set(values).size, values.length)
  t.equal(ADVISORY_LOCKS.migration, 727_001, 'an older instance takes the same numbers')
})

t.test('a slow job never runs twice at once; stop waits for the run under way', async (t) => {
  const { log } = recordingLog()
  let active = 0
  let most = 0
  let runs = 0
  let finished = 0
  const job: Job = {
    name: 'slow',
    everyMs: 5,
    async run () {
      runs++
      active++
      most = Math.max(most, active)
      await sleep(30)
      active--
      finished++
    }
  }
  const stop = startSchedule([job], { db: noDb, log })
  await sleep(100)
  await stop()
  t.equal(most, 1, 'one run at a time')
  t.ok(runs >= 2, `ran ${runs} times`)
  t.equal(finished, runs, 'stop resolved after the last run finished')
  await sleep(30)
  t.equal(runs, finished, 'nothing runs after stop')
})

t.test('runAtStart runs at once; a failure is logged with the job name and the next period runs again', async (t) => {
  const { log, warnings } = recordingLog()
  const started: string[] = []
  let failures = 0
  const jobs: Job[] = [
    { name: 'at-start', everyMs: 60_000, runAtStart: true, async run () { started.push('at-start') } },
    { name: 'later', everyMs: 60_000, async run () { started.push('later') } },
    { name: 'failing', everyMs: 10, async run () { failures++; throw new Error('boom') } }
  ]
  const stop = startSchedule(jobs, { db: noDb, log })
  await sleep(100)
  await stop()
  t.same(started, ['at-start'], 'only the runAtStart job ran before its first period')
  t.ok(failures >= 2, 'a failing job runs again at its next period')
  t.ok(warnings.length >= 2)
  t.ok(warnings.every((w) => w.job === 'failing' && w.message.includes('failing')), 'logged with its name')
})

t.test('a job reporting more runs again at once, until it does not; stop ends the batches', async (t) => {
  let left = 3
  const calls: Date[] = []
  const job: Job = {
    name: 'batches',
    everyMs: 60_000,
    async run ({ now }) {
      calls.push(now)
      left--
      return { more: left > 0 }
    }
  }
  t.equal(await runJob(job, { db: noDb }), true)
  t.equal(calls.length, 3)
  t.ok(calls.every((c) => c === calls[0]), 'every batch of one run has the same now')

  left = 3
  calls.length = 0
  t.equal(await runJob(job, { db: noDb, stopping: () => true }), true)
  t.equal(calls.length, 1, 'stopping: the rest waits for the next run')
  t.throws(() => startSchedule([job, job], { db: noDb, log: recordingLog().log }), /scheduled twice/)
})

t.test('a locked job runs in a transaction holding its lock, and is skipped while another holds it', { skip: databaseUrl ? false : 'needs two connections: PostgreSQL only' }, async (t) => {
  const app = await build(t, { background: false })
  const db = app.deps.database.db
  const events: string[] = []
  let batches = 0
  const job: LockedJob = {
    name: 'locked',
    everyMs: 60_000,
    lock: ADVISORY_LOCKS.leaseSweep,
    async run ({ tx }) {
      const [row] = await queryRows<{ n: number }>(tx, sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and objid = ${ADVISORY_LOCKS.leaseSweep} and pid = pg_backend_pid()`)
      events.push(`held:${row?.n === 1}`)
      batches++
      return { more: batches < 2, afterCommit: () => { events.push('committed') } }
    }
  }
  t.equal(await runJob(job, { db }), true)
  t.same(events, ['held:true', 'committed', 'held:true', 'committed'], 'each batch in its own locked transaction, afterCommit after each')

  events.length = 0
  let release = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let locked = () => {}
  const isLocked = new Promise<void>((resolve) => { locked = resolve })
  const other = db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.leaseSweep})`)
    locked()
    await held
  })
  await isLocked
  t.equal(await runJob(job, { db }), false, 'skipped: another instance holds the lock')
  t.same(events, [])
  release()
  await other
})

t.test('the one list: every job has a name of its own, its own file, and a period', async (t) => {
  const app = await build(t, { background: false })
  const jobs = createJobs({ ...app.deps, log: app.log })
  const names = jobs.map((j) => j.name)
  t.equal(new Set(names).size, names.length)
  for (const job of jobs) {
    t.ok(existsSync(new URL(`../../src/jobs/${job.name}.ts`, import.meta.url)), `src/jobs/${job.name}.ts`)
    t.ok(job.everyMs >= 1000, `${job.name} every ${job.everyMs} ms`)
  }
  t.same(jobs.filter((j) => j.lock !== undefined).map((j) => j.name).sort(), ['sweep-expiries', 'sweep-leases'])
  t.same(jobs.filter((j) => j.runAtStart).map((j) => j.name).sort(), ['maintain-usage-partitions', 'refresh-gauges'])
})
