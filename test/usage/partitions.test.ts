// Issue 16: usage_events partitioned by month (declarative partitioning), partitions created ahead
// by the service (idempotent, safe from several instances at once), USAGE_RETENTION_DAYS dropping
// whole old months while the rollups keep their history, and the migration from the plain table.
// On PostgreSQL every test has a database of its own (retention drops tables); embedded, each app
// has its own in-memory PGlite.
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { loadConfig, ConfigError } from '../../src/config/config.ts'
import { tablesInOrder } from '../../src/domain/operations/backup.ts'
import { migrationsFolder, queryRows, type Db } from '../../src/infra/database.ts'
import { DEFAULT_PARTITION, dropExpiredUsagePartitions, ensureUsagePartitions, listUsagePartitions, monthStart, partitionName } from '../../src/domain/usage/partitions.ts'
import { insertUsageBatch } from '../../src/domain/usage/usage-writer.ts'
import { maintainUsagePartitions, maintainUsagePartitionsJob } from '../../src/jobs/maintain-usage-partitions.ts'
import { startSchedule } from '../../src/jobs/schedule.ts'
import { build, createClient, createSerial, databaseUrl, gqlOk, TEST_DATA_DIR } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'

const DAY_MS = 86_400_000
const THIS_MIGRATION = '20261130232740_usage_partitions'

async function app (t: Parameters<typeof build>[0], env: Record<string, string> = {}, url?: string): Promise<FastifyInstance> {
  const database = url ?? await freshDatabase(t)
  return build(t, { background: false, env: { ...(database ? { DATABASE_URL: database } : {}), ...env } })
}

const partitionDeps = (server: FastifyInstance) => ({ db: server.deps.database.db, log: server.log, retentionDays: server.deps.config.usageRetentionDays })
/** One run of the maintain-usage-partitions job's work, with its report. */
const maintain = (server: FastifyInstance) => maintainUsagePartitions(partitionDeps(server), new Date())

async function partitionOf (db: Db, id: string): Promise<string | undefined> {
  const [row] = await queryRows<{ p: string }>(db, sql`select tableoid::regclass::text as p from usage_events where id = ${id}`)
  return row?.p
}

async function partitionNames (db: Db): Promise<string[]> {
  return (await listUsagePartitions(db)).map((p) => p.name)
}

let ids = 0
function usageRow (serial: { id: string }, clientId: string, recordedAt: Date, fields: { deviceId?: string, quantity?: number } = {}) {
  return { id: `use_t${process.pid}x${ids++}`, serialId: serial.id, clientId, deviceId: fields.deviceId ?? 'pc-1', quantity: fields.quantity ?? 1, recordedAt }
}

t.test('usage_events is partitioned by month; REST usage lands in its month; replay by seq spans partitions', async (t) => {
  const server = await app(t)
  const db = server.deps.database.db
  const [parted] = await queryRows<{ strategy: string }>(db, sql`select partstrat as strategy from pg_partitioned_table where partrelid = 'usage_events'::regclass`)
  t.equal(parted?.strategy, 'r', 'partitioned by range')
  const now = new Date()
  const names = await partitionNames(db)
  for (let i = 0; i <= 2; i++) t.ok(names.includes(partitionName(monthStart(now, i))), `${partitionName(monthStart(now, i))} exists`)
  t.ok(names.includes(DEFAULT_PARTITION), 'a DEFAULT partition takes rows no month holds yet')

  const client = await createClient(server)
  const serial = await createSerial(server, client.id, { maxUsageCount: 2 })
  const recorded: Array<{ id: string, seq: string }> = []
  for (const deviceId of ['pc-1', 'pc-1', 'pc-2']) {
    const res = await server.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId, quantity: 2 } })
    t.equal(res.statusCode, 201, res.body)
    recorded.push(res.json().usageEvent)
  }
  const thisMonth = partitionName(monthStart(new Date()))
  for (const e of recorded) t.equal(await partitionOf(db, e.id), thisMonth, 'stored in the current month\'s partition')

  // An event of an old month (its partition made first): replay follows seq, whatever the partition.
  const oldMonth = monthStart(now, -7)
  await ensureUsagePartitions(db, oldMonth)
  const old = usageRow(serial, client.id, new Date(oldMonth.getTime() + 3 * DAY_MS))
  await insertUsageBatch(db, [old])
  t.equal(await partitionOf(db, old.id), partitionName(oldMonth))
  const replay = await server.deps.services.usage.since({ serialId: serial.id }, Number(recorded[0]!.seq))
  t.same(replay.map((e) => e.id), [recorded[1]!.id, recorded[2]!.id, old.id], 'events after the cursor, in seq order')
  t.ok(replay[2]!.seq > Number(recorded[2]!.seq), 'seq keeps increasing')
  t.equal(await server.deps.services.usage.latestSeq(), replay[2]!.seq)

  // Backups read the parent only: partitions are not tables of their own there.
  const tables = await tablesInOrder(db)
  t.ok(tables.includes('usage_events'))
  t.same(tables.filter((name) => name.startsWith('usage_events_')), [], 'no partition listed')
})

t.test('ensureUsagePartitions is idempotent and safe when two instances run it at once', async (t) => {
  const url = await freshDatabase(t)
  const a = await app(t, {}, url)
  // On PostgreSQL a second instance (its own pool) on the same database; embedded, one PGlite.
  const b = url ? await app(t, {}, url) : a
  const future = monthStart(new Date(), 61)
  const expected = [0, 1, 2].map((i) => partitionName(monthStart(future, i)))
  const [one, two] = await Promise.all([
    ensureUsagePartitions(a.deps.database.db, future),
    ensureUsagePartitions(b.deps.database.db, future)
  ])
  t.same([...one.created, ...two.created].sort(), expected, 'each month created once, by one of them')
  t.same((await partitionNames(a.deps.database.db)).filter((n) => expected.includes(n)), expected)
  const again = await ensureUsagePartitions(a.deps.database.db, future)
  t.same(again, { created: [], moved: 0 }, 'nothing to do the second time')
  const parts = await listUsagePartitions(a.deps.database.db)
  const first = parts.find((p) => p.name === expected[0])
  t.same([first?.from?.toISOString(), first?.to?.toISOString()], [future.toISOString(), monthStart(future, 1).toISOString()], 'UTC month bounds')
  // Bounds are read the same whatever the session's time zone.
  const elsewhere = await a.deps.database.db.transaction(async (tx) => {
    await tx.execute(sql`set local timezone = 'Pacific/Chatham'`)
    return (await listUsagePartitions(tx)).find((p) => p.name === expected[0])
  })
  t.same(elsewhere, first)
})

t.test('rows waiting in the DEFAULT partition move into their month when it is created', async (t) => {
  const server = await app(t)
  const db = server.deps.database.db
  const client = await createClient(server)
  const serial = await createSerial(server, client.id)
  const month = monthStart(new Date(), -30)
  const rows = [usageRow(serial, client.id, new Date(month.getTime() + DAY_MS)), usageRow(serial, client.id, new Date(monthStart(month, 1).getTime() - 1))]
  await insertUsageBatch(db, rows)
  for (const r of rows) t.equal(await partitionOf(db, r.id), DEFAULT_PARTITION, 'no partition yet: the DEFAULT one holds it')
  const report = await ensureUsagePartitions(db, new Date())
  t.same(report, { created: [partitionName(month)], moved: 2 })
  for (const r of rows) t.equal(await partitionOf(db, r.id), partitionName(month), 'moved into its month')
  const [left] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from usage_events_default`)
  t.equal(left?.n, 0)
  // The month's partition now takes the month's new rows directly.
  const later = usageRow(serial, client.id, new Date(month.getTime() + 5 * DAY_MS))
  await insertUsageBatch(db, [later])
  t.equal(await partitionOf(db, later.id), partitionName(month))
})

t.test('USAGE_RETENTION_DAYS drops whole old months, never the DEFAULT partition nor newer rows; rollups stay', async (t) => {
  const server = await app(t, { USAGE_RETENTION_DAYS: '60' })
  t.equal(server.deps.config.usageRetentionDays, 60)
  const db = server.deps.database.db
  const client = await createClient(server)
  const serial = await createSerial(server, client.id, { maxUsageCount: 5 })
  const now = new Date()
  // Four months back: its upper bound is more than 60 days ago. Last month: it ends this month.
  const oldMonth = monthStart(now, -4)
  const oldDay = new Date(oldMonth.getTime() + 10 * DAY_MS)
  const old = [usageRow(serial, client.id, new Date(oldDay.getTime() + 3_600_000), { deviceId: 'd1', quantity: 3 }), usageRow(serial, client.id, new Date(oldDay.getTime() + 7_200_000), { deviceId: 'd2', quantity: 4 })]
  const recent = usageRow(serial, client.id, new Date(monthStart(now, -1).getTime() + DAY_MS))
  await insertUsageBatch(db, [...old, recent])

  // Everything still waits in the DEFAULT partition: nothing to drop, and the DEFAULT one never is.
  const early = await dropExpiredUsagePartitions(db, now, 1)
  t.same(early.dropped, [])
  t.ok((await partitionNames(db)).includes(DEFAULT_PARTITION))
  t.equal(await partitionOf(db, old[0]!.id), DEFAULT_PARTITION, 'rows in the DEFAULT partition are kept')

  const { ensured, retention } = await maintain(server)
  t.same(ensured.created, [partitionName(oldMonth), partitionName(monthStart(now, -1))], 'old months get their partitions first')
  t.equal(ensured.moved, 3)
  t.same(retention?.dropped, [partitionName(oldMonth)], 'the old month is dropped')
  t.ok(Math.abs(retention!.cutoff.getTime() - (Date.now() - 60 * DAY_MS)) < 60_000, 'cut-off: now − 60 days')
  const names = await partitionNames(db)
  t.notOk(names.includes(partitionName(oldMonth)))
  t.ok(names.includes(partitionName(monthStart(now, -1))), 'a month holding rows newer than the cut-off stays')
  t.ok(names.includes(DEFAULT_PARTITION), 'the DEFAULT partition stays')
  t.equal(await partitionOf(db, old[0]!.id), undefined, 'the old rows are gone')
  t.equal(await partitionOf(db, recent.id), partitionName(monthStart(now, -1)), 'the recent row is kept')

  // The rollups still answer for the dropped month.
  const patterns = await gqlOk(server, `query ($c: ID, $since: DateTime, $until: DateTime) {
    usagePatterns(clientId: $c, granularity: DAY, since: $since, until: $until) { bucket usageEvents quantity distinctDevices } }`,
  { c: client.id, since: oldDay.toISOString(), until: new Date(oldDay.getTime() + DAY_MS).toISOString() })
  t.match(patterns.usagePatterns, [{ bucket: oldDay.toISOString(), usageEvents: 2, quantity: 7, distinctDevices: 2 }])

  const again = await maintain(server)
  t.same([again.ensured.created, again.retention?.dropped], [[], []], 'idempotent')
})

t.test('without USAGE_RETENTION_DAYS nothing is dropped; the schedule creates partitions at start', async (t) => {
  const server = await app(t)
  t.equal(server.deps.config.usageRetentionDays, undefined)
  const db = server.deps.database.db
  const next = partitionName(monthStart(new Date(), 1))
  await db.execute(sql`drop table ${sql.identifier(next)}`)
  await db.execute(sql`drop table ${sql.identifier(DEFAULT_PARTITION)}`)
  const stop = startSchedule([maintainUsagePartitionsJob(partitionDeps(server))], { db, log: server.log })
  t.teardown(stop)
  const deadline = Date.now() + 20_000
  const done = async () => { const names = await partitionNames(db); return names.includes(next) && names.includes(DEFAULT_PARTITION) }
  while (!await done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok((await partitionNames(db)).includes(next), 'recreated at start-up')
  t.ok((await partitionNames(db)).includes(DEFAULT_PARTITION), 'the DEFAULT partition too')
  const report = await maintain(server)
  t.equal(report.retention, null, 'retention off')
})

t.test('a partition change waits for its locks a few seconds at most; writes go on meanwhile', { skip: databaseUrl ? false : 'needs two connections: PostgreSQL only' }, async (t) => {
  const url = (await freshDatabase(t))!
  const server = await app(t, {}, url)
  const db = server.deps.database.db
  const client = await createClient(server)
  const serial = await createSerial(server, client.id)
  const next = partitionName(monthStart(new Date(), 1))
  await db.execute(sql`drop table ${sql.identifier(next)}`)
  // A long reader of the DEFAULT partition, on a connection of its own.
  const { default: postgres } = await import('postgres')
  const other = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => other.end({ timeout: 5 }))
  let release = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let locked = () => {}
  const isLocked = new Promise<void>((resolve) => { locked = resolve })
  const reader = other.begin(async (tx) => {
    await tx`lock table usage_events_default in access share mode`
    locked()
    await held
  })
  await isLocked
  const started = Date.now()
  const blocked = maintain(server)
  const res = await server.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc-1' } })
  t.equal(res.statusCode, 201, 'a usage write is not held up')
  const report = await blocked
  t.same(report.ensured.created, [], 'gave up (logged), to be retried')
  t.ok(Date.now() - started < 10_000, `gave up after ${Date.now() - started} ms`)
  release()
  await reader
  t.same((await maintain(server)).ensured.created, [next], 'made at the next run')
})

t.test('a bad USAGE_RETENTION_DAYS stops start-up with one line', async (t) => {
  for (const value of ['0', '-30', '1.5', 'ninety']) {
    const error = await loadConfig({ DATA_DIR: TEST_DATA_DIR, USAGE_RETENTION_DAYS: value }).then(() => null, (e: unknown) => e)
    t.ok(error instanceof ConfigError, value)
    t.match((error as Error).message, /^Invalid configuration: USAGE_RETENTION_DAYS [^\n]+$/)
  }
})

/** Applies the migrations in `folder` to a database of its own; returns it and a closer. */
async function migratedDatabase (t: Parameters<typeof build>[0], folder: string): Promise<{ db: Db, migrate: (folder: string) => Promise<void>, close: () => Promise<void> }> {
  if (databaseUrl) {
    const url = (await freshDatabase(t))!
    const { default: postgres } = await import('postgres')
    const { drizzle } = await import('drizzle-orm/postgres-js')
    const { migrate } = await import('drizzle-orm/postgres-js/migrator')
    const client = postgres(url, { max: 1, onnotice: () => {} })
    const db = drizzle({ client }) as unknown as Db
    const run = async (f: string) => { await migrate(db as never, { migrationsFolder: f }) }
    await run(folder)
    return { db, migrate: run, close: () => client.end({ timeout: 5 }) }
  }
  const { PGlite } = await import('@electric-sql/pglite')
  const { drizzle } = await import('drizzle-orm/pglite')
  const { migrate } = await import('drizzle-orm/pglite/migrator')
  const client = new PGlite()
  const db = drizzle({ client }) as unknown as Db
  const run = async (f: string) => { await migrate(db as never, { migrationsFolder: f }) }
  await run(folder)
  return { db, migrate: run, close: () => client.close() }
}

t.test('the migration converts an existing usage_events: rows, months and seq preserved', async (t) => {
  // The migrations before this one, in a folder of their own.
  const dir = mkdtempSync(join(tmpdir(), 'serials-migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const all = migrationsFolder()
  for (const name of readdirSync(all).filter((n) => n < THIS_MIGRATION)) cpSync(join(all, name), join(dir, name), { recursive: true })
  const { db, migrate, close } = await migratedDatabase(t, dir)
  t.teardown(close)
  const [plain] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from pg_partitioned_table`)
  t.equal(plain?.n, 0, 'before: a plain table')

  const now = new Date()
  const times = [new Date('2024-02-29T23:59:59.999Z'), new Date(monthStart(now, -1).getTime() + 5 * DAY_MS), now, new Date(now.getTime() + 1000)]
  for (const [i, at] of times.entries()) {
    await db.execute(sql`insert into usage_events (id, serial_id, client_id, device_id, quantity, feature, ip, recorded_at)
      values (${`use_m${i}`}, 'ser_m', 'cli_m', ${`dev-${i}`}, ${i + 1}, ${i % 2 ? 'export' : null}, '192.0.2.1', ${at.toISOString()}::timestamptz)`)
  }
  // Seqs taken and lost (a rolled-back insert) before the migration must not come back either.
  await db.execute(sql`select nextval('usage_events_seq_seq')`)
  const rows = async () => queryRows<{ u: Record<string, unknown> }>(db, sql`select to_jsonb(u) as u from usage_events u order by seq`)
  const before = await rows()
  const [{ last } = { last: 0 }] = await queryRows<{ last: string }>(db, sql`select last_value as last from usage_events_seq_seq`)

  await migrate(all)

  const [parted] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from pg_partitioned_table where partrelid = 'usage_events'::regclass`)
  t.equal(parted?.n, 1, 'after: partitioned')
  t.same(await rows(), before, 'every row, every column, unchanged')
  for (const [i, at] of times.entries()) t.equal(await partitionOf(db, `use_m${i}`), partitionName(monthStart(at)), `row ${i} in its month`)
  const names = await partitionNames(db)
  for (let i = 0; i <= 2; i++) t.ok(names.includes(partitionName(monthStart(now, i))), 'the current and next 2 months')
  t.ok(names.includes(DEFAULT_PARTITION))
  t.notOk(names.includes(partitionName(monthStart(now, -2))), 'no empty month in the gaps')

  const [next] = await queryRows<{ id: string, seq: string }>(db, sql`insert into usage_events (id, serial_id, client_id, device_id) values ('use_after', 'ser_m', 'cli_m', 'dev-x') returning id, seq`)
  t.equal(Number(next?.seq), Number(last) + 1, 'seq continues after the last one taken, no reuse')
  const [owned] = await queryRows<{ s: string | null }>(db, sql`select pg_get_serial_sequence('usage_events', 'seq') as s`)
  t.match(owned?.s, /usage_events_seq_seq/, 'the sequence belongs to the new column')
  const [old] = await queryRows<{ r: string | null }>(db, sql`select to_regclass('usage_events_old')::text as r`)
  t.equal(old?.r, null, 'the old table is gone')
  const indexes = (await queryRows<{ name: string }>(db, sql`select indexname as name from pg_indexes where tablename in ('usage_events', 'serials')`)).map((r) => r.name)
  for (const name of ['usage_events_pkey', 'usage_events_seq_idx', 'usage_events_serial_time_idx', 'usage_events_client_time_idx', 'serials_revoked_idx']) t.ok(indexes.includes(name), name)
  const [fks] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from pg_constraint where contype = 'f' and confrelid = 'usage_events'::regclass`)
  t.equal(fks?.n, 0, 'no foreign key points at usage_events')
})
