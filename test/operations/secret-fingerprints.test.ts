// The database remembers fingerprints of the secrets its data depends on; an instance started with
// other secrets is refused with one line naming the variable (instead of NOT_FOUND for every serial).
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { runCli } from '../../src/main/cli.ts'
import { fingerprintOf, recordRotatedKeys, SecretMismatchError } from '../../src/domain/operations/secret-fingerprints.ts'
import { queryRows } from '../../src/infra/database.ts'
import { build, createClient, createSerial, freePort, gqlOk, TEST_DATA_DIR } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const secret = () => randomBytes(32).toString('hex')

/**
 * One database the test owns: a fresh PostgreSQL database, or an embedded PGlite on disk (in
 * memory, every app would get its own database). Returns the env pointing at it.
 */
async function ownDatabase (t: Parameters<typeof freshDatabase>[0] & { teardown (fn: () => unknown): void }): Promise<Record<string, string | undefined>> {
  const url = await freshDatabase(t)
  if (url) return { DATABASE_URL: url }
  const dir = mkdtempSync(join(tmpdir(), 'serials-fp-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return { DATABASE_URL: undefined, DATA_DIR: dir, SIGNING_ALGORITHM: 'ED25519' }
}

const embedded = (env: Record<string, string | undefined>) => env.DATABASE_URL === undefined

t.test('two instances with different ENCRYPTION_PEPPER on one database: the second refuses to start', async (t) => {
  const db = await ownDatabase(t)
  const base = { ...db, JWT_SECRET: secret(), ENCRYPTION_KEY: secret() }
  const first = await build(t, { background: false, env: { ...base, ENCRYPTION_PEPPER: secret() } })
  const { id: clientId } = await createClient(first)
  const { serialNumber } = await createSerial(first, clientId)
  // PGlite allows one process at a time: the first must let go of DATA_DIR.
  if (embedded(db)) await first.close()

  const env = { ...base, ENCRYPTION_PEPPER: secret() }
  const error = await build(t, { background: false, env }).then(() => undefined, (e: unknown) => e)
  t.ok(error instanceof SecretMismatchError, `refused: ${String(error)}`)
  t.equal((error as SecretMismatchError).variable, 'ENCRYPTION_PEPPER')
  // The server exits with one line naming the variable, without the secret.
  const full: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, LOG_LEVEL: 'warn', API_PORT: String(await freePort()) }
  for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v
  const result = await run(process.execPath, ['--import', 'tsx', 'src/main/server.ts'], { cwd: root, env: full, timeout: 120_000 })
    .then(() => ({ code: 0, stderr: '' }), (e: { code: number, stderr: string }) => ({ code: e.code, stderr: e.stderr }))
  t.equal(result.code, 1, 'exit code 1')
  const lines = result.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${result.stderr}`)
  t.match(lines[0], /^Serials failed to start: ENCRYPTION_PEPPER differs from the one this database was set up with/)
  t.notOk(result.stderr.includes(env.ENCRYPTION_PEPPER), 'the message does not carry the secret')

  // The database keeps fingerprints only: none of the secrets appears in it.
  const again = await build(t, { background: false, env: { ...base, ENCRYPTION_PEPPER: (first.deps.config.pepper).toString() } })
  const rows = await queryRows<{ name: string, fingerprint: string }>(again.deps.database.db, sql`select name, fingerprint from secret_fingerprints order by name`)
  t.same(rows.map((r) => r.name), ['ENCRYPTION_KEY', 'ENCRYPTION_PEPPER', 'JWT_SECRET'])
  t.equal(rows.find((r) => r.name === 'ENCRYPTION_PEPPER')!.fingerprint, fingerprintOf('ENCRYPTION_PEPPER', first.deps.config.pepper))
  for (const value of [base.JWT_SECRET, base.ENCRYPTION_KEY]) t.notOk(JSON.stringify(rows).includes(value))
  // The same secrets start and find the serial.
  const res = await again.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber, deviceId: 'd1' } })
  t.equal(res.json().code, 'VALID')
})

t.test('another JWT_SECRET or ENCRYPTION_KEY is refused, naming the variable', async (t) => {
  const db = await ownDatabase(t)
  const good = { ...db, JWT_SECRET: secret(), ENCRYPTION_KEY: secret(), ENCRYPTION_PEPPER: secret() }
  const first = await build(t, { background: false, env: good })
  await first.close()
  for (const name of ['JWT_SECRET', 'ENCRYPTION_KEY'] as const) {
    const error = await build(t, { background: false, env: { ...good, [name]: secret() } }).then(() => undefined, (e: unknown) => e)
    t.ok(error instanceof SecretMismatchError, `${name} refused`)
    t.equal((error as SecretMismatchError).variable, name)
    t.match((error as Error).message, new RegExp(`^${name} `))
  }
  // The CLI checks too before writing an API key whose hash no server would find.
  const lines: string[] = []
  const code = await runCli(['create-api-key', '--role', 'ADMIN', '--name', 'x'], { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, LOG_LEVEL: 'silent', ...good, ENCRYPTION_PEPPER: secret() },
    { out: (l) => lines.push(l), err: (l) => lines.push(l) })
  t.equal(code, 1)
  t.match(lines.join('\n'), /^create-api-key: ENCRYPTION_PEPPER differs/)
})

t.test('key rotation: the new key with the old one in ENCRYPTION_KEYS_PREVIOUS starts; after the rotation the old key alone is refused as rotated out', async (t) => {
  const db = await ownDatabase(t)
  const oldKey = secret()
  const newKey = secret()
  const base = { ...db, JWT_SECRET: secret(), ENCRYPTION_PEPPER: secret() }
  const first = await build(t, { background: false, env: { ...base, ENCRYPTION_KEY: oldKey } })
  await createClient(first)
  await first.close()

  const rotating = { ...base, ENCRYPTION_KEY: newKey, ENCRYPTION_KEYS_PREVIOUS: oldKey }
  const during = await build(t, { background: false, env: rotating })
  t.ok(during, 'a rotation under way starts')
  if (embedded(db)) {
    // The CLI needs DATA_DIR, which this app holds; rotate through the same connection.
    const { rotateEncryptionKey } = await import('../../src/domain/operations/key-rotation.ts')
    await rotateEncryptionKey(during.deps.database.db, during.deps.keyring)
    await recordRotatedKeys(during.deps.database.db, during.deps.config.encryptionKey, during.deps.config.encryptionKeysPrevious)
    await during.close()
  } else {
    const lines: string[] = []
    t.equal(await runCli(['rotate-encryption-key'], { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, LOG_LEVEL: 'silent', ...rotating }, { out: (l) => lines.push(l), err: (l) => lines.push(l) }), 0, lines.join('\n'))
  }
  const error = await build(t, { background: false, env: { ...base, ENCRYPTION_KEY: oldKey } }).then(() => undefined, (e: unknown) => e)
  t.ok(error instanceof SecretMismatchError, 'the old key is refused')
  t.match((error as Error).message, /^ENCRYPTION_KEY is a key this database rotated out/)
  const after = await build(t, { background: false, env: { ...base, ENCRYPTION_KEY: newKey } })
  const client = await createClient(after)
  const read = await gqlOk(after, 'query ($id: ID!) { client(id: $id) { contactEmail } }', { id: client.id })
  t.equal(read.client.contactEmail, 'ops@example.com')
})
