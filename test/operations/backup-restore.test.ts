// backup → restore into an empty database leaves a service that validates the same serials,
// verifies the same audit chain and has the same usage history; damaged or misplaced restores
// change nothing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { runCli } from '../../src/main/cli.ts'
import { backupDatabase, restoreDatabase } from '../../src/domain/operations/backup.ts'
import { queryRows } from '../../src/infra/database.ts'
import { build, createClient, createSerial, gqlOk, TEST_DATA_DIR } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'

async function seed (t: Test, app: FastifyInstance) {
  const client = await createClient(app)
  const serials = [await createSerial(app, client.id, { maxUsageCount: 2 }), await createSerial(app, client.id), await createSerial(app, client.id)]
  for (const [i, s] of serials.entries()) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: s.serialNumber, deviceId: `dev-${i}`, quantity: i + 1, feature: 'export' } })
    t.equal(res.statusCode, 201, 'usage recorded')
  }
  await gqlOk(app, 'mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { id } }', { i: { id: serials[2]!.id, reason: 'refund' } })
  return { client, serials }
}

async function snapshot (app: FastifyInstance) {
  const audit = (await gqlOk(app, '{ verifyAuditLog { valid checked firstBrokenId } }')).verifyAuditLog
  const usage = await queryRows<{ u: unknown }>(app.deps.database.db, sql`select to_jsonb(u) as u from usage_events u order by id`)
  return { audit, usage: usage.map((r) => r.u) }
}

async function validate (app: FastifyInstance, serialNumber: string, deviceId: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber, deviceId } })
  return res.json().code
}

t.test('backup and restore into an empty database: same serials, audit chain and usage history', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'serials-backup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'serials.backup.gz')
  const [urlA, urlB] = [await freshDatabase(t), await freshDatabase(t)]
  const source = await build(t, { background: false, env: urlA ? { DATABASE_URL: urlA } : {} })
  const seeded = await seed(t, source)
  const before = await snapshot(source)
  t.ok(before.audit.valid && before.audit.checked > 0, 'the source audit chain is valid')
  t.ok(before.usage.length >= 3, 'usage recorded')

  let target: FastifyInstance
  const log: string[] = []
  const io = { out: (l: string) => log.push(l), err: (l: string) => log.push(l) }
  if (urlA && urlB) {
    // PostgreSQL: end to end through the CLI, next to the live source service.
    const env = (url: string) => ({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: url, LOG_LEVEL: 'silent' })
    t.equal(await runCli(['backup', '--out', file], env(urlA), io), 0, log.join('\n'))
    t.match(log.join('\n'), /backup: serials 3 rows/, 'progress names tables and rows')
    t.equal(await runCli(['restore', '--in', file], env(urlB), io), 0, log.join('\n'))
    log.length = 0
    t.equal(await runCli(['restore', '--in', file], env(urlB), io), 1, 'a second restore meets a non-empty database')
    t.match(log.join('\n'), /not empty .*--force/)
    t.equal(await runCli(['restore', '--in', file, '--force'], env(urlB), io), 0, log.join('\n'))
    target = await build(t, { background: false, env: { DATABASE_URL: urlB } })
  } else {
    // Embedded: each in-memory database lives with its app, so both run in this process.
    const manifest = await backupDatabase(source.deps.database.db, file, (l) => log.push(l))
    t.equal(manifest.rowCounts.serials, 3)
    target = await build(t, { background: false })
    await restoreDatabase(target.deps.database.db, target.deps.config, file)
    await t.rejects(restoreDatabase(target.deps.database.db, target.deps.config, file), /not empty/)
    await restoreDatabase(target.deps.database.db, target.deps.config, file, { force: true })
  }

  const header = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8').split('\n')[0]!)
  t.match(header, { format: 'serials-backup', schemaVersion: /secret_fingerprints|\w/, fingerprints: { ENCRYPTION_PEPPER: /^[0-9a-f]{64}$/ } })
  const text = gunzipSync(readFileSync(file)).toString('utf8')
  for (const s of seeded.serials) t.notOk(text.includes(s.serialNumber), 'no serial number in clear text')

  const after = await snapshot(target)
  t.same(after.audit, before.audit, 'the same audit chain verifies')
  t.same(after.usage, before.usage, 'the same usage history')
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-0'), 'VALID', 'a restored serial validates for its device')
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-new'), 'VALID', 'the second slot is free')
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-third'), 'TOO_MANY_DEVICES', 'device counts came along')
  t.equal(await validate(target, seeded.serials[2]!.serialNumber, 'dev-2'), 'REVOKED')
  const revealed = await gqlOk(target, 'mutation ($i: RevealSerialNumberInput!) { revealSerialNumber(input: $i) }', { i: { id: seeded.serials[1]!.id } })
  t.equal(revealed.revealSerialNumber, seeded.serials[1]!.serialNumber, 'encrypted columns decrypt')
  // New writes after a restore: sequences continue after the restored rows.
  const res = await target.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: seeded.serials[1]!.serialNumber, deviceId: 'dev-1', quantity: 1 } })
  t.equal(res.statusCode, 201, res.body)
  t.equal((await gqlOk(target, '{ verifyAuditLog { valid } }')).verifyAuditLog.valid, true)
})

t.test('a damaged backup is refused and the database is left as it was', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'serials-backup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const [urlA, urlB] = [await freshDatabase(t), await freshDatabase(t)]
  const source = await build(t, { background: false, env: urlA ? { DATABASE_URL: urlA } : {} })
  await seed(t, source)
  const file = join(dir, 'good.gz')
  await backupDatabase(source.deps.database.db, file)
  const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n')
  const i = lines.findIndex((l) => l.startsWith('{"t":"usage_events"'))
  lines[i] = lines[i]!.replace(/"quantity":\s*(\d+)/, (_m, q: string) => `"quantity": ${Number(q) + 1000}`)
  const bad = join(dir, 'bad.gz')
  writeFileSync(bad, gzipSync(lines.join('\n')))
  const truncated = join(dir, 'truncated.gz')
  writeFileSync(truncated, gzipSync(lines.slice(0, -2).join('\n') + '\n'))

  const target = await build(t, { background: false, env: urlB ? { DATABASE_URL: urlB } : {} })
  await t.rejects(restoreDatabase(target.deps.database.db, target.deps.config, bad), /checksum does not match/)
  await t.rejects(restoreDatabase(target.deps.database.db, target.deps.config, truncated), /no manifest/)
  const [row] = await queryRows<{ n: number }>(target.deps.database.db, sql`select count(*)::int as n from serials`)
  t.equal(row!.n, 0, 'nothing was kept')
  // Another pepper: the restored rows would be unreadable, so nothing is kept either.
  const other = { ...target.deps.config, pepper: Buffer.from('another pepper, another service!') }
  await t.rejects(restoreDatabase(target.deps.database.db, other, file), /ENCRYPTION_PEPPER differs/)
  const [again] = await queryRows<{ n: number }>(target.deps.database.db, sql`select count(*)::int as n from serials`)
  t.equal(again!.n, 0)
})
