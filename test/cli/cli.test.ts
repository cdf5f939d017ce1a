import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { runCli } from '../../src/cli.ts'
import { freshDatabase } from '../security/fresh-database.ts'
import { build, gql, TEST_DATA_DIR } from '../helper.ts'

const run = promisify(execFile)

function capture () {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } }
}

t.test('create-api-key prints a working key once; verify-audit-log reports the chain', async (t) => {
  const url = await freshDatabase(t)
  if (!url) { t.pass('needs PostgreSQL: the CLI and the app must share a database'); return }
  const env = { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: url, LOG_LEVEL: 'silent' }

  const migrate = capture()
  t.equal(await runCli(['migrate'], env, migrate.io), 0)
  t.same(migrate.out, ['migrations applied'])

  const created = capture()
  t.equal(await runCli(['create-api-key', '--role', 'ADMIN', '--name', 'ops'], env, created.io), 0, created.err.join('\n'))
  t.equal(created.out.length, 1, 'stdout holds only the key')
  t.match(created.out[0], /^srl_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/)
  t.match(created.err.join('\n'), /shown once/)

  const app = await build(t, { background: false, env: { DATABASE_URL: url } })
  const me = await gql(app, '{ me { role } apiKeys { name createdAt } }', {}, created.out[0])
  t.equal(me.data?.me.role, 'ADMIN')
  t.ok(me.data?.apiKeys.some((k: { name: string }) => k.name === 'ops'))
  const audit = await gql(app, '{ auditLog(first: 5, filter: { action: "api_key.created" }) { edges { node { actorId } } } }', {}, created.out[0])
  t.equal(audit.data?.auditLog.edges[0].node.actorId, 'system', 'the bootstrap is audited')

  const bad = capture()
  t.equal(await runCli(['create-api-key', '--role', 'MANAGER', '--name', 'm'], env, bad.io), 1)
  t.match(bad.err.join('\n'), /VALIDATION_ERROR.*clientId/)
  t.same(bad.out, [], 'no key printed on failure')
  const missing = capture()
  t.equal(await runCli(['create-api-key', '--role', 'MANAGER', '--name', 'm', '--client', 'cli_missing'], env, missing.io), 1)
  t.match(missing.err.join('\n'), /NOT_FOUND/)

  const verify = capture()
  t.equal(await runCli(['verify-audit-log'], env, verify.io), 0)
  t.match(JSON.parse(verify.out[0]!), { valid: true, firstBrokenId: null })
  await app.deps.database.db.execute((await import('drizzle-orm')).sql`update audit_log set actor_id = 'forged' where seq = (select min(seq) from audit_log)`)
  const broken = capture()
  t.equal(await runCli(['verify-audit-log'], env, broken.io), 1, 'exit code 1 on a broken chain')
  t.match(JSON.parse(broken.out[0]!), { valid: false, firstBrokenId: /^aud_/ })

  const unknown = capture()
  t.equal(await runCli(['nonsense'], env, unknown.io), 1)
  t.match(unknown.err.join('\n'), /usage/)
})

t.test('invalid configuration: one clear line, exit code 1', async (t) => {
  const c = capture()
  t.equal(await runCli(['migrate'], { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, JWT_SECRET: 'short' }, c.io), 1)
  t.match(c.err.join('\n'), /JWT_SECRET/)
})

t.test('npm run cli works as a process', async (t) => {
  const url = await freshDatabase(t)
  const env = { ...process.env, NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: url ?? 'memory://', LOG_LEVEL: 'silent' }
  const { stdout } = await run('npx', ['tsx', 'src/cli.ts', 'create-api-key', '--role', 'AUDITOR', '--name', 'proc'], { env })
  t.match(stdout.trim(), /^srl_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/)
})
