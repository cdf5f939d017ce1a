// No plaintext secret in a database dump, and key rotation re-encrypts every encrypted column.
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { webhooks } from '../../schema/index.ts'
import { runCli } from '../../src/main/cli.ts'
import { keyIdOf } from '../../src/infra/crypto.ts'
import { queryRows } from '../../src/infra/database.ts'
import { ENCRYPTED_COLUMNS } from '../../src/domain/operations/key-rotation.ts'
import { build, createApiKey, createClient, gqlOk, TEST_DATA_DIR, ADMIN_KEY } from '../helper.ts'
import { freshDatabase } from './fresh-database.ts'

const run = promisify(execFile)

/** Every row of every table as text (the portable form of a dump). */
async function dumpAsText (app: FastifyInstance): Promise<string> {
  const db = app.deps.database.db
  const tables = await queryRows<{ name: string }>(db, sql`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`)
  let text = ''
  for (const { name } of tables) {
    const rows = await queryRows<{ row: string }>(db, sql`select t::text as row from ${sql.identifier(name)} t`)
    text += rows.map((r) => r.row).join('\n')
  }
  return text
}

async function seed (app: FastifyInstance) {
  const email = `secret-${randomBytes(4).toString('hex')}@example.com`
  const client = await createClient(app, { contactEmail: email })
  const created = await gqlOk(app, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serial { id } serialNumber } }', { i: { clientId: client.id } })
  const bulk = await gqlOk(app, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serialNumber } } }', { i: { clientId: client.id, count: 2, idempotencyKey: `idem-${randomBytes(4).toString('hex')}` } })
  const deviceHost = `host-${randomBytes(6).toString('hex')}`
  await gqlOk(app, 'mutation ($i: ValidateSerialInput!) { validateSerial(input: $i) { code } }', { i: { serialNumber: created.createSerial.serialNumber, deviceId: 'dev-1', deviceInfo: { hostname: deviceHost } } })
  const apiKey = await createApiKey(app, 'MANAGER', client.id)
  const webhookSecret = `whsec_${randomBytes(16).toString('hex')}`
  await app.deps.database.db.insert(webhooks).values({ id: `whk_${randomBytes(8).toString('hex')}`, clientId: client.id, url: 'https://example.com/hook', events: [], secretEnc: app.deps.keyring.encrypt(webhookSecret) })
  const numbers = [created.createSerial.serialNumber, ...bulk.createSerials.serials.map((s: { serialNumber: string }) => s.serialNumber)]
  return { client, serialId: created.createSerial.serial.id, numbers, email, deviceHost, apiKey, webhookSecret }
}

function plaintextsOf (s: Awaited<ReturnType<typeof seed>>): string[] {
  return [
    s.email, s.deviceHost, s.webhookSecret, s.apiKey,
    // The secret part of srl_<keyId>_<secret>: it may itself contain '_', so cut after the key id.
    s.apiKey.slice('srl_'.length + 26 + 1), ADMIN_KEY,
    // Serial numbers in every spelling a dump could hold them: grouped, and without dashes.
    ...s.numbers, ...s.numbers.map((n) => n.replace(/-/g, ''))
  ]
}

t.test('a dump of the database holds no serial number, API key, contact email or device info in clear', async (t) => {
  const url = await freshDatabase(t)
  const app = await build(t, { background: false, env: url ? { DATABASE_URL: url } : {} })
  const seeded = await seed(app)
  const secrets = plaintextsOf(seeded)

  const text = await dumpAsText(app)
  t.ok(text.length > 1000, 'the dump holds the data')
  for (const secret of secrets) t.notOk(text.includes(secret), `row text has no ${secret.slice(0, 6)}…`)

  if (url && existsSync('/usr/bin/pg_dump')) {
    const { stdout } = await run('/usr/bin/pg_dump', ['--data-only', url], { maxBuffer: 64 * 1024 * 1024 })
    t.match(stdout, /COPY public\.serials/, 'pg_dump ran')
    for (const secret of secrets) t.notOk(stdout.includes(secret), `pg_dump has no ${secret.slice(0, 6)}…`)
  }
})

t.test('rotate-encryption-key re-encrypts every column with the new key; old data stays readable', async (t) => {
  const url = await freshDatabase(t)
  const oldKey = randomBytes(32).toString('hex')
  const newKey = randomBytes(32).toString('base64')
  const dataDir = url ? TEST_DATA_DIR : undefined
  const first = await build(t, { background: false, env: { ENCRYPTION_KEY: oldKey, ...(url ? { DATABASE_URL: url } : {}) } })
  const seeded = await seed(first)
  if (!url) {
    // Embedded: the in-memory database dies with the app, so rotate through the same connection.
    const { rotateEncryptionKey } = await import('../../src/domain/operations/key-rotation.ts')
    const { createKeyring } = await import('../../src/infra/crypto.ts')
    const keyring = createKeyring(Buffer.from(newKey, 'base64'), [Buffer.from(oldKey, 'hex')])
    const reports = await rotateEncryptionKey(first.deps.database.db, keyring, { batchSize: 2 })
    t.ok(reports.every((r) => r.rotated > 0), 'every column had rows to rotate')
    return
  }
  await first.close()

  const env = { NODE_ENV: 'test', DATA_DIR: dataDir, DATABASE_URL: url, ENCRYPTION_KEY: newKey, ENCRYPTION_KEYS_PREVIOUS: oldKey, LOG_LEVEL: 'silent' }
  const lines: string[] = []
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) }
  t.equal(await runCli(['rotate-encryption-key', '--batch', '2'], env, io), 0, lines.join('\n'))
  for (const spec of ENCRYPTED_COLUMNS) t.match(lines.join('\n'), new RegExp(`${spec.table}\\.${spec.column}: [1-9]\\d* re-encrypted`), `${spec.table}.${spec.column} rotated`)
  // Resumable: a second run finds nothing left to do.
  lines.length = 0
  t.equal(await runCli(['rotate-encryption-key'], env, io), 0)
  t.match(lines.join('\n'), /serials\.number_enc: 0 re-encrypted/)

  // Only the new key from now on: everything is still readable.
  const second = await build(t, { background: false, env: { ENCRYPTION_KEY: newKey, DATABASE_URL: url } })
  const newId = keyIdOf(Buffer.from(newKey, 'base64'))
  for (const spec of ENCRYPTED_COLUMNS) {
    const expr = spec.json ? sql`${sql.identifier(spec.column)}->>'enc'` : sql.identifier(spec.column)
    const rows = await queryRows<{ c: string }>(second.deps.database.db, sql`select ${expr} as c from ${sql.identifier(spec.table)} where ${expr} is not null`)
    t.ok(rows.length > 0 && rows.every((r) => r.c.startsWith(`v1.${newId}.`)), `${spec.table}.${spec.column} all under the new key`)
  }
  const revealed = await gqlOk(second, 'mutation ($i: RevealSerialNumberInput!) { revealSerialNumber(input: $i) }', { i: { id: seeded.serialId } })
  t.equal(revealed.revealSerialNumber, seeded.numbers[0])
  const client = await gqlOk(second, 'query ($id: ID!) { client(id: $id) { contactEmail } }', { id: seeded.client.id })
  t.equal(client.client.contactEmail, seeded.email)
})

t.test('a ciphertext under a key that is not in the keyring fails the rotation loudly', async (t) => {
  const url = await freshDatabase(t)
  if (!url) { t.pass('needs PostgreSQL: the embedded database lives only as long as its app'); return }
  const first = await build(t, { background: false, env: { ENCRYPTION_KEY: randomBytes(32).toString('hex'), DATABASE_URL: url } })
  await createClient(first)
  await first.close()
  const lines: string[] = []
  const code = await runCli(['rotate-encryption-key'], { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: url, ENCRYPTION_KEY: randomBytes(32).toString('hex'), LOG_LEVEL: 'silent' }, { out: (l) => lines.push(l), err: (l) => lines.push(l) })
  t.equal(code, 1)
  t.match(lines.join('\n'), /not in the keyring/)
})
