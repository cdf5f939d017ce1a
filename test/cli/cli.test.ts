import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { runCli } from '../../src/main/cli.ts'
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
})

t.test('help, unknown commands and bad arguments: answered before any configuration or database', async (t) => {
  // A configuration that cannot load: anything that reached loadConfig would fail with JWT_SECRET.
  const env = { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, JWT_SECRET: 'short' }
  const help = capture()
  t.equal(await runCli(['--help'], env, help.io), 0)
  t.match(help.out.join('\n'), /usage: npm run -s cli -- <command>/)
  for (const name of ['migrate', 'create-api-key', 'rotate-encryption-key', 'verify-audit-log']) t.match(help.out.join('\n'), name)
  t.same(help.err, [])

  const commandHelp = capture()
  t.equal(await runCli(['create-api-key', '--help'], env, commandHelp.io), 0)
  t.match(commandHelp.out.join('\n'), /create-api-key --role ADMIN\|MANAGER\|AUDITOR --name <name>/)
  const helpTopic = capture()
  t.equal(await runCli(['help', 'rotate-encryption-key'], env, helpTopic.io), 0)
  t.match(helpTopic.out.join('\n'), /--batch <rows>/)

  const unknown = capture()
  t.equal(await runCli(['nonsense'], env, unknown.io), 2)
  t.match(unknown.err.join('\n'), /^unknown command "nonsense"/)
  t.equal(await runCli(['toString'], env, capture().io), 2, 'no prototype keys as commands')

  const none = capture()
  t.equal(await runCli([], env, none.io), 2)
  t.match(none.err.join('\n'), /usage/)

  for (const args of [['create-api-key', '--role', 'ADMIN', '--bogus'], ['create-api-key', '--role', 'ADMIN'], ['rotate-encryption-key', '--batch', '0'], ['migrate', 'extra']]) {
    const bad = capture()
    t.equal(await runCli(args, env, bad.io), 2, args.join(' '))
    t.notMatch(bad.err.join('\n'), /JWT_SECRET/, 'the arguments were checked first')
    t.match(bad.err.join('\n'), /usage: npm run -s cli --/)
  }
})

t.test('invalid configuration: one clear line, exit code 1', async (t) => {
  const c = capture()
  t.equal(await runCli(['migrate'], { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, JWT_SECRET: 'short' }, c.io), 1)
  t.match(c.err.join('\n'), /JWT_SECRET/)
})

t.test('npm run cli works as a process', async (t) => {
  const url = await freshDatabase(t)
  const env = { ...process.env, NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: url ?? 'memory://', LOG_LEVEL: 'silent' }
  const { stdout } = await run('npx', ['tsx', 'src/main/cli.ts', 'create-api-key', '--role', 'AUDITOR', '--name', 'proc'], { env })
  t.match(stdout.trim(), /^srl_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/)
  // As the README writes it: `npm run -s` keeps npm's banner off stdout, so $(…) is the key alone.
  const viaNpm = await run('npm', ['run', '-s', 'cli', '--', 'create-api-key', '--role', 'AUDITOR', '--name', 'npm'], { env })
  t.match(viaNpm.stdout, /^srl_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}\n$/, 'stdout is exactly one line: the key')
  const unknown = await run('npm', ['run', '-s', 'cli', '--', 'nonsense'], { env }).then(() => undefined, (error: { code: number, stderr: string }) => error)
  t.equal(unknown?.code, 2)
  t.match(unknown?.stderr, /unknown command/)
})

t.test('.env in the working directory: read by the CLI, environment wins, skipped under NODE_ENV=test', async (t) => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const cwd = mkdtempSync(join(tmpdir(), 'serials-env-'))
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
  const cliPath = new URL('../../src/main/cli.ts', import.meta.url).pathname
  // --import resolves from the working directory, which has no node_modules: name tsx's loader.
  const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href
  // An invalid value makes loading visible without opening anything: config fails naming it.
  writeFileSync(join(cwd, '.env'), 'API_PORT=99999\nDATA_DIR=./env-data\n')
  const base = { PATH: process.env.PATH, HOME: process.env.HOME }
  const attempt = (env: Record<string, string | undefined>) => run(process.execPath, ['--import', tsx, cliPath, 'migrate'], { cwd, env: { ...base, ...env } })
    .then(() => ({ code: 0, stderr: '' }), (error: { code: number, stderr: string }) => error)
  const loaded = await attempt({ NODE_ENV: 'development' })
  t.equal(loaded.code, 1)
  t.match(loaded.stderr, /API_PORT/, '.env was read')
  const envWins = await attempt({ NODE_ENV: 'development', API_PORT: '70000' })
  t.match(envWins.stderr, /API_PORT/)
  const skipped = await attempt({ NODE_ENV: 'test', DATABASE_URL: 'memory://', SIGNING_ALGORITHM: 'ED25519', DATA_DIR: join(cwd, 'data') })
  t.equal(skipped.code, 0, `tests never read .env: ${skipped.stderr}`)
})
