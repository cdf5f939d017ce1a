// export → import moves one client between two deployments with DIFFERENT secrets (pepper,
// encryption key, JWT secret): on the target the same serial numbers validate with the same device
// counts, the usage history and analytics are there, the audit chain verifies (the source's entries
// appended as new ones), and a damaged, foreign or conflicting file changes nothing.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { runCli } from '../../src/main/cli.ts'
import { backupDatabase } from '../../src/domain/operations/backup.ts'
import { ENCRYPTED_EXPORT_MAGIC } from '../../src/domain/operations/export-crypto.ts'
import { EXPORT_TABLES, exportClient, importClient, NOT_EXPORTED } from '../../src/domain/operations/export-import.ts'
import { rowRules } from '../../src/domain/operations/import-rules.ts'
import { createProgressReporter } from '../../src/domain/operations/progress.ts'
import { createKeyring } from '../../src/infra/crypto.ts'
import { queryRows } from '../../src/infra/database.ts'
import { ENCRYPTED_COLUMNS } from '../../src/domain/operations/key-rotation.ts'
import { build, createApiKey, createClient, createSerial, gqlOk, TEST_DATA_DIR } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'
import { readExport, writeExport } from './export-files.ts'

/** The target deployment's own secrets (the source uses the shared development ones). */
const TARGET_SECRETS = {
  ENCRYPTION_PEPPER: 'target-deployment-pepper-0123456789abcdef',
  ENCRYPTION_KEY: 'ab'.repeat(32),
  JWT_SECRET: 'target-deployment-jwt-secret-0123456789abcdef'
}
const PASSPHRASE = 'correct horse battery staple'
/** The signing key both operators hold (`--key-env EXPORT_KEY`). */
const SIGNING_KEY = 'shared-signing-key-0123456789abcdef'
// Four databases (two of them on-disk PGlite opened by the CLI) on a shared 2-core machine: the
// default 180 s is too tight under load.
t.setTimeout(600_000)

async function seed (t: Test, app: FastifyInstance) {
  const client = await createClient(app, { contactEmail: 'moving@acme.test' })
  const { createPolicy: policy } = await gqlOk(app, 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }', { input: { name: 'Pro', maxDevices: 2, entitlements: ['SYNC'] } })
  const serials = [
    await createSerial(app, client.id, { policyId: policy.id }),
    await createSerial(app, client.id, { maxUsageCount: 3 }),
    await createSerial(app, client.id)
  ]
  // A first validation with device info (encrypted at rest), then usage.
  const first = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: serials[1]!.serialNumber, deviceId: 'dev-1', deviceInfo: { os: 'linux' } } })
  t.equal(first.json().code, 'VALID')
  for (const [i, s] of serials.entries()) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: s.serialNumber, deviceId: `dev-${i}`, quantity: i + 1, feature: 'export' } })
    t.equal(res.statusCode, 201, res.body)
  }
  await gqlOk(app, 'mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { id } }', { i: { id: serials[2]!.id, reason: 'refund' } })
  const { createWebhook: hook } = await gqlOk(app, 'mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { id } } }', { input: { clientId: client.id, url: 'https://hooks.acme.test/serials', events: ['serial.revoked'] } })
  await createApiKey(app, 'MANAGER', client.id)
  // Another client on the source: must not travel.
  const other = await createClient(app)
  await createSerial(app, other.id)
  return { client, policy, serials, webhook: { id: hook.webhook.id as string, secret: hook.secret as string } }
}

async function validate (app: FastifyInstance, serialNumber: string, deviceId: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber, deviceId } })
  return res.json().code
}

const STATS = '($id: ID!) { clientStatistics(clientId: $id) { serialsTotal activeDevices usageLast30Days { events quantity } serialsByStatus { active revoked } } }'

async function count (app: FastifyInstance, table: string, clientId?: string): Promise<number> {
  const where = clientId ? sql` where client_id = ${clientId}` : sql``
  const [row] = await queryRows<{ n: number }>(app.deps.database.db, sql`select count(*)::int as n from ${sql.identifier(table)}${where}`)
  return row!.n
}

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'serials-export-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

async function tableCoverage (t: Test, app: FastifyInstance) {
  const tables = await queryRows<{ name: string, part: boolean }>(app.deps.database.db, sql`select c.relname as name, c.relispartition as part
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relkind in ('r', 'p')`)
  // Partitions travel with their parent.
  for (const { name } of tables.filter((r) => !r.part)) {
    t.ok(EXPORT_TABLES.some((s) => s.table === name) || name in NOT_EXPORTED, `${name} is exported or listed in NOT_EXPORTED`)
  }
  for (const { table, column } of ENCRYPTED_COLUMNS) {
    const spec = EXPORT_TABLES.find((s) => s.table === table)
    t.ok(table in NOT_EXPORTED || (spec?.encrypted && column in spec.encrypted), `${table}.${column} is decrypted on export or not exported`)
  }
  t.ok(EXPORT_TABLES.find((s) => s.table === 'serials')?.drop?.includes('number_hash'), 'the pepper-keyed hash is recomputed, never copied')
  // Every column an export carries has an import rule (a column added by a migration needs one).
  const rules = rowRules({ clientId: `cli_${'0'.repeat(26)}`, clientNumber: 'X' })
  for (const spec of EXPORT_TABLES) {
    const columns = (await queryRows<{ c: string }>(app.deps.database.db, sql`select column_name as c from information_schema.columns
      where table_schema = 'public' and table_name = ${spec.table} order by column_name`)).map((r) => r.c)
    const inFile = columns.filter((c) => !spec.drop?.includes(c)).map((c) => spec.encrypted?.[c] ?? c).sort()
    const shape = Object.keys((rules[spec.table] as unknown as { shape: Record<string, unknown> }).shape).sort()
    t.same(shape, inFile, `${spec.table}: every column in the file has an import rule, and no rule lacks its column`)
  }
}

/** Rewrites an export's text; the checksum recomputed, and with `key` the MAC too. */
async function rewrite (from: string, to: string, edit: (text: string) => string, key?: string): Promise<void> {
  writeFileSync(to, edit(readFileSync(from, 'utf8')))
  await writeExport(to, readExport(to), key)
}

t.test('export from one deployment, import into another with other secrets; refusals change nothing', async (t) => {
  const dir = tempDir(t)
  const plain = join(dir, 'client.ndjson')
  const sealed = join(dir, 'client.ndjson.enc')
  const [urlA, urlB] = [await freshDatabase(t), await freshDatabase(t)]
  const source = await build(t, { background: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true', ...(urlA ? { DATABASE_URL: urlA } : {}) } })
  await t.test('every table either moves or is listed as not exported; every encrypted column is re-encrypted', (t) => tableCoverage(t, source))
  const seeded = await seed(t, source)
  // The seeded webhook's host (hooks.acme.test) resolves nowhere: the target allows private hosts, as the source does.
  const target = await build(t, { background: false, env: { ...TARGET_SECRETS, WEBHOOK_ALLOW_PRIVATE: 'true', ...(urlB ? { DATABASE_URL: urlB } : {}) } })
  const { db } = target.deps.database
  const cfg = target.deps.config
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-0'), 'NOT_FOUND', 'unknown on the target before the import')
  const before = (await gqlOk(source, `query ${STATS}`, { id: seeded.client.id })).clientStatistics
  const log: string[] = []
  const io = { out: (l: string) => log.push(l), err: (l: string) => log.push(l) }
  const env = (url: string, secrets: Record<string, string> = {}) => ({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: url, LOG_LEVEL: 'silent', WEBHOOK_ALLOW_PRIVATE: 'true', EXPORT_PASS: PASSPHRASE, EXPORT_KEY: SIGNING_KEY, ...secrets })

  if (urlA) {
    // PostgreSQL: through the CLI, next to the live services.
    t.equal(await runCli(['export', '--client', seeded.client.id, '--out', plain, '--key-env', 'EXPORT_KEY'], env(urlA), io), 0, log.join('\n'))
    t.equal(await runCli(['export', '--client', seeded.client.id, '--out', sealed, '--passphrase-env', 'EXPORT_PASS'], env(urlA), io), 0, log.join('\n'))
  } else {
    // Embedded: each in-memory database lives with its app, so both run in this process.
    await exportClient(source.deps.database.db, source.deps.config, seeded.client.id, plain, { signingKey: SIGNING_KEY, progress: (l, amount) => { if (!amount?.tick) log.push(l) } })
    await exportClient(source.deps.database.db, source.deps.config, seeded.client.id, sealed, { passphrase: PASSPHRASE })
  }
  t.match(log.join('\n'), /clear text/, 'the operator is told the file holds serial numbers in clear text')
  t.match(log.join('\n'), /export: serials 3 rows/, 'progress names tables and rows')

  t.equal(statSync(plain).mode & 0o777, 0o600, 'the export file is readable by its owner only')
  t.equal(statSync(sealed).mode & 0o777, 0o600)
  const lines = readFileSync(plain, 'utf8').trimEnd().split('\n')
  const header = JSON.parse(lines[0]!)
  t.match(header, { type: 'header', format: 'serials-export', version: 2, clientId: seeded.client.id, createdAt: String, schemaVersion: String, signature: { alg: 'HMAC-SHA256', kdf: 'scrypt', salt: String, keyFrom: 'key' } })
  t.match(header.notExported, [{ what: 'api_keys', count: 1, reason: /re-issue/ }], 'the API key is listed as not exported')
  t.match(JSON.parse(lines.at(-1)!), { type: 'manifest', rowCounts: { clients: 1, serials: 3, policies: 1, webhooks: 1 }, sha256: /^[0-9a-f]{64}$/, mac: /^[0-9a-f]{64}$/ })
  const text = lines.join('\n')
  t.ok(text.includes(seeded.serials[0]!.serialNumber.replace(/-/g, '')), 'the plain file holds the serial numbers')
  t.notOk(text.includes('number_hash') || text.includes('_enc"'), 'no source hash or ciphertext')
  t.notOk(text.includes('"secret_hash"'), 'no API key rows')
  const raw = readFileSync(sealed)
  t.ok(raw.subarray(0, 8).equals(ENCRYPTED_EXPORT_MAGIC), 'the sealed file starts with its magic')
  t.notOk(raw.includes(seeded.serials[0]!.serialNumber.replace(/-/g, '')), 'the sealed file hides the numbers')

  // Refused files leave the target as it was.
  const nothing = async (what: string) => {
    t.equal(await count(target, 'clients'), 0, `${what}: no client`)
    t.equal(await count(target, 'serials'), 0, `${what}: no serial`)
    t.equal(await count(target, 'audit_log'), 0, `${what}: no audit entry`)
  }
  const tampered = join(dir, 'tampered.ndjson')
  const i = lines.findIndex((l) => l.startsWith('{"t":"usage_events"'))
  writeFileSync(tampered, lines.map((l, n) => n === i ? l.replace(/"quantity":\s*(\d+)/, (_m, q: string) => `"quantity": ${Number(q) + 1000}`) : l).join('\n') + '\n')
  await t.rejects(importClient(db, cfg, tampered, { signingKey: SIGNING_KEY }), /signature does not verify/)
  await t.rejects(importClient(db, cfg, plain), /signed with a key: pass --key-env/)
  await t.rejects(importClient(db, cfg, plain, { signingKey: 'another key' }), /signature does not verify: it was not made with this signing key/)
  const truncated = join(dir, 'truncated.ndjson')
  writeFileSync(truncated, lines.slice(0, -1).join('\n') + '\n')
  await t.rejects(importClient(db, cfg, truncated, { signingKey: SIGNING_KEY }), /no manifest/)
  const backup = join(dir, 'backup.gz')
  await backupDatabase(source.deps.database.db, backup)
  await t.rejects(importClient(db, cfg, backup), /not a Serials export \(a gzip file: a backup\? use restore\)/)
  const foreign = join(dir, 'foreign.ndjson')
  writeFileSync(foreign, `${JSON.stringify({ type: 'header', format: 'serials-backup', version: 1 })}\n`)
  await t.rejects(importClient(db, cfg, foreign), /not a Serials export \(format serials-backup: use restore\)/)
  writeFileSync(foreign, '{"hello":"world"}\n')
  await t.rejects(importClient(db, cfg, foreign), /not a Serials export/)
  const future = join(dir, 'future.ndjson')
  writeFileSync(future, lines.map((l, n) => n === 0 ? l.replace('"version":2', '"version":3') : l).join('\n'))
  await t.rejects(importClient(db, cfg, future), /version 3 is not supported/)
  writeFileSync(future, lines.map((l, n) => n === 0 ? l.replace('"version":2', '"version":1') : l).join('\n'))
  await t.rejects(importClient(db, cfg, future), /version 1 is not supported: it is not signed/)
  await t.rejects(importClient(db, cfg, sealed), /encrypted: pass --passphrase-env/)
  await t.rejects(importClient(db, cfg, sealed, { passphrase: 'wrong' }), /passphrase does not open/)
  const cut = join(dir, 'cut.enc')
  writeFileSync(cut, raw.subarray(0, raw.length - 5))
  await t.rejects(importClient(db, cfg, cut, { passphrase: PASSPHRASE }), /does not authenticate|truncated/)
  await nothing('refused files')
  // Into the deployment the client came from: it exists.
  await t.rejects(importClient(source.deps.database.db, source.deps.config, plain, { signingKey: SIGNING_KEY }), /already exists here/)

  log.length = 0
  if (urlB) {
    t.equal(await runCli(['import', '--in', sealed, '--passphrase-env', 'EXPORT_PASS'], env(urlB, TARGET_SECRETS), io), 0, log.join('\n'))
    t.match(log.join('\n'), /imported client .*\(3 serials, \d+ audit entries appended/)
    t.match(log.join('\n'), /API keys were not exported/)
    t.match(log.join('\n'), /servers can keep running/)
  } else {
    const result = await importClient(db, cfg, sealed, { passphrase: PASSPHRASE })
    t.equal(result.manifest.rowCounts.serials, 3)
    t.same(result.policiesKept, [])
  }

  // The serials validate on the target (answered by the service that was running all along).
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-0'), 'VALID', 'same number, same device')
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-new'), 'VALID', 'the policy\'s second slot is free')
  t.equal(await validate(target, seeded.serials[0]!.serialNumber, 'dev-third'), 'TOO_MANY_DEVICES', 'device counts came along')
  t.equal(await validate(target, seeded.serials[2]!.serialNumber, 'dev-2'), 'REVOKED')
  const revealed = await gqlOk(target, 'mutation ($i: RevealSerialNumberInput!) { revealSerialNumber(input: $i) }', { i: { id: seeded.serials[1]!.id } })
  t.equal(revealed.revealSerialNumber, seeded.serials[1]!.serialNumber, 'ids kept; the number decrypts with the target key')
  const [a] = await queryRows<{ h: string }>(source.deps.database.db, sql`select number_hash as h from serials where id = ${seeded.serials[1]!.id}`)
  const [b] = await queryRows<{ h: string }>(db, sql`select number_hash as h from serials where id = ${seeded.serials[1]!.id}`)
  t.not(a!.h, b!.h, 're-hashed with the target pepper')
  const [client] = await queryRows<{ e: string }>(db, sql`select contact_email_enc as e from clients where id = ${seeded.client.id}`)
  const targetKeys = createKeyring(cfg.encryptionKey)
  t.equal(targetKeys.decrypt(client!.e), 'moving@acme.test', 'contact e-mail re-encrypted')
  const [hook] = await queryRows<{ e: string }>(db, sql`select secret_enc as e from webhooks where id = ${seeded.webhook.id}`)
  t.equal(targetKeys.decrypt(hook!.e), seeded.webhook.secret, 'webhook secret re-encrypted')
  const [device] = await queryRows<{ e: string | null }>(db, sql`select device_info_enc as e from devices where device_id = 'dev-1'`)
  t.same(JSON.parse(targetKeys.decrypt(device!.e!)), { os: 'linux' }, 'device info re-encrypted')

  // Usage history and analytics.
  const after = (await gqlOk(target, `query ${STATS}`, { id: seeded.client.id })).clientStatistics
  t.same({ ...after, activeDevices: before.activeDevices }, before, 'same statistics (usage, serials by status)')
  t.equal(after.activeDevices, before.activeDevices + 1, 'plus the device that validated above')
  const usage = async (app: FastifyInstance) => await queryRows<{ id: string, quantity: number, recorded_at: string }>(app.deps.database.db,
    sql`select id, quantity, recorded_at::text from usage_events where client_id = ${seeded.client.id} order by seq`)
  t.same(await usage(target), await usage(source), 'the same usage events, in order, with their times')
  t.equal(await count(target, 'usage_daily', seeded.client.id), await count(source, 'usage_daily', seeded.client.id), 'rollups came along')
  t.equal(await count(target, 'api_keys'), 0, 'no API key moved')
  t.equal(await count(target, 'serials'), 3, 'the other client stayed behind')

  // The audit chain: the source's entries appended as new ones, plus client.imported.
  t.same((await gqlOk(target, '{ verifyAuditLog { valid } }')).verifyAuditLog, { valid: true })
  const sourceEntries = await count(source, 'audit_log', seeded.client.id)
  t.equal(await count(target, 'audit_log', seeded.client.id), sourceEntries + 2, 'every entry of the client, plus client.imported and the revealSerialNumber above')
  const imported = (await gqlOk(target, '{ auditLog(first: 1, filter: { action: "client.imported" }) { edges { node { targetId actorId changes } } } }')).auditLog.edges
  t.match(imported[0].node, { targetId: seeded.client.id, actorId: 'system', changes: { clientNumber: seeded.client.clientNumber, rowCounts: { serials: 3 } } })
  const revoked = (await gqlOk(target, '{ auditLog(first: 1, filter: { action: "serial.revoked" }) { edges { node { targetId changes } } } }')).auditLog.edges
  t.match(revoked[0].node, { targetId: seeded.serials[2]!.id, changes: { reason: 'refund', importedFrom: { id: /^aud_/, actorId: String, createdAt: String } } }, 'the original actor and time travel in importedFrom')

  // The same client twice: refused.
  const entries = await count(target, 'audit_log')
  await t.rejects(importClient(db, cfg, plain, { signingKey: SIGNING_KEY }), new RegExp(`client ${seeded.client.clientNumber} \\(${seeded.client.id}\\) already exists here`))
  // Another client id and number, but serial numbers that exist here: refused, nothing written.
  const renamed = join(dir, 'renamed.ndjson')
  const rename = (text: string) => text.replaceAll(seeded.client.id, `cli_${'Z'.repeat(26)}`).replaceAll(seeded.client.clientNumber, 'MOVED-1')
  // With the checksum recomputed, as anyone can: the signature does not verify.
  await rewrite(plain, renamed, rename)
  await t.rejects(importClient(db, cfg, renamed, { signingKey: SIGNING_KEY }), /signature does not verify/)
  // Signed again by a holder of the key: the serial numbers that exist here are refused.
  await rewrite(plain, renamed, rename, SIGNING_KEY)
  await t.rejects(importClient(db, cfg, renamed, { signingKey: SIGNING_KEY }), /serial ser_\w+ already exists here \(as ser_\w+, number ending \w{5}\): nothing imported/)
  t.equal(await count(target, 'clients'), 1, 'the renamed client was not kept')
  t.equal(await count(target, 'audit_log'), entries, 'no audit entry added')

  // Exported again from the target, with the terminal progress bar (a fake TTY).
  const screen: string[] = []
  const tty = Object.assign(new Writable({ write (chunk, _encoding, callback) { screen.push(String(chunk)); callback() } }), { isTTY: true, columns: 100 })
  const reporter = createProgressReporter(tty, { minIntervalMs: 0 })
  const again = await exportClient(db, cfg, seeded.client.id, join(dir, 'again.ndjson'), { signingKey: SIGNING_KEY, progress: reporter.progress })
  reporter.end()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(again.rowCounts.serials, 3, 'the imported client exports again from the target')
  const drawn = screen.join('')
  t.ok(drawn.startsWith('export: ') && drawn.includes('\r['), 'the warning on its own line, then the bar redrawn in place')
  t.match(drawn.split('\r').at(-1), /^\[#+\] 100% export: audit_log \d+ rows/, 'the last bar is full')
  t.ok(drawn.endsWith('\x1b[K\n'), 'end() closes the line')

  // New writes on the target after the import.
  const res = await target.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: seeded.serials[1]!.serialNumber, deviceId: 'dev-1', quantity: 1 } })
  t.equal(res.statusCode, 201, res.body)
  t.equal((await gqlOk(target, '{ verifyAuditLog { valid } }')).verifyAuditLog.valid, true)
})

t.test('the CLI: bad arguments and unknown clients are one clear line and a non-zero exit code', async (t) => {
  const dir = tempDir(t)
  const url = await freshDatabase(t)
  // Embedded: a PGlite directory of its own (the CLI opens it; nothing else holds it).
  const env = { NODE_ENV: 'test', DATA_DIR: url ? TEST_DATA_DIR : join(dir, 'data'), LOG_LEVEL: 'silent', EXPORT_KEY: SIGNING_KEY, ...(url ? { DATABASE_URL: url } : {}) }
  const log: string[] = []
  const io = { out: (l: string) => log.push(l), err: (l: string) => log.push(l) }
  const run = async (...args: string[]) => { log.length = 0; return await runCli(args, env, io) }
  const out = join(dir, 'x.ndjson')

  t.equal(await run('export', '--out', out), 2)
  t.match(log.join('\n'), /^export: --client is required\nusage: npm run -s cli -- export --client <clientId> --out <file.ndjson>/)
  t.equal(await run('export', '--client', 'cli_1'), 2)
  t.match(log[0], 'export: --out is required')
  t.equal(await run('export', '--client', 'cli_1', '--out', out, '--passphrase-env', 'NO_SUCH_VARIABLE_HERE'), 2)
  t.match(log[0], /NO_SUCH_VARIABLE_HERE, which is not set/)
  t.equal(await run('export', '--client', 'cli_1', '--out', out, '--key-env', 'NO_SUCH_VARIABLE_HERE'), 2)
  t.match(log[0], /--key-env names NO_SUCH_VARIABLE_HERE, which is not set/)
  t.equal(await run('export', '--client', 'cli_1', '--out', out), 2)
  t.match(log[0], /export: --key-env or --passphrase-env is required: the file is signed/)
  t.equal(await run('import', '--in', out, '--max-bytes', 'lots'), 2)
  t.match(log[0], /--max-bytes must be a size/)
  t.equal(await run('import'), 2)
  t.match(log[0], 'import: --in is required')
  t.equal(await run('export', '--client', 'cli_1', '--out', out, '--bogus'), 2)

  t.equal(await run('migrate'), 0, log.join('\n'))
  t.equal(await run('export', '--client', `cli_${'0'.repeat(26)}`, '--out', out, '--key-env', 'EXPORT_KEY'), 1)
  t.same(log, [`export: client cli_${'0'.repeat(26)} not found`])
  t.throws(() => statSync(out), 'no file is left behind')
  t.equal(await run('export', '--client', 'nonsense', '--out', out, '--key-env', 'EXPORT_KEY'), 1)
  t.match(log[0], /export: "nonsense" is not a client id/)
  t.equal(await run('import', '--in', join(dir, 'missing.ndjson')), 1)
  t.same(log, [`import: ${join(dir, 'missing.ndjson')} does not exist`])
  t.match((await run('--help'), log.join('\n')), /export .*\n.*import /s, 'both commands are listed')
})
