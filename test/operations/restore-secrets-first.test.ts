// A restore into a fresh data folder (issue #28): the new DATA_DIR generates secrets of its own, so
// the backup's rows could never be read. The restore says so in one line before it opens (let
// alone migrates or fills) a database, names what is missing, and works once the secrets are there.
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { backupDatabase, readBackupHeader, restoreDatabase } from '../../src/domain/operations/backup.ts'
import { runCli } from '../../src/main/cli.ts'
import { build, createClient, createSerial, TEST_DATA_DIR } from '../helper.ts'

function capture () {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), progress: { progress: (l: string) => err.push(l), end () {} } } }
}

t.test('restore into a fresh DATA_DIR: the missing secrets are named first, in one line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'serials-restore-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // The source: secrets from TEST_DATA_DIR/secrets, data in its own in-memory database.
  const source = await build(t, { background: false, embedded: true })
  const client = await createClient(source)
  const serial = await createSerial(source, client.id)
  const file = join(dir, 'serials.backup.gz')
  await backupDatabase(source.deps.database.db, file)
  t.match(await readBackupHeader(file), { format: 'serials-backup', fingerprints: { ENCRYPTION_PEPPER: /^[0-9a-f]{64}$/ } })

  const fresh = join(dir, 'data-new')
  const env = { NODE_ENV: 'test', DATA_DIR: fresh, SIGNING_ALGORITHM: 'ED25519', LOG_LEVEL: 'silent' }
  const started = performance.now()
  const refused = capture()
  t.equal(await runCli(['restore', '--in', file], env, refused.io), 1)
  t.equal(refused.err.length, 1, `one line: ${refused.err.join('\n')}`)
  t.match(refused.err[0], /^restore: ENCRYPTION_PEPPER, JWT_SECRET and ENCRYPTION_KEY differ from those the backup was made with/)
  t.match(refused.err[0], `came from ${fresh}/secrets/`)
  t.match(refused.err[0], `cp <old DATA_DIR>/secrets/* ${fresh}/secrets/`)
  t.match(refused.err[0], /nothing was changed/)
  t.same(refused.out, [])
  t.notOk(existsSync(join(fresh, 'pglite')), 'refused before the database was created or migrated')
  t.ok(performance.now() - started < 30_000, 'at once, not after the long work')

  // Secrets set in the environment are named as such.
  const fromEnv = capture()
  t.equal(await runCli(['restore', '--in', file], { ...env, ENCRYPTION_PEPPER: 'a pepper of another deployment!!' }, fromEnv.io), 1)
  t.match(fromEnv.err[0], /set ENCRYPTION_PEPPER to the old deployment's values/)
  const missing = capture()
  t.equal(await runCli(['restore', '--in', join(dir, 'nope.gz')], env, missing.io), 1)
  t.match(missing.err[0], /^restore: .*nope\.gz does not exist$/)

  // As the line says: copy the old secrets in, run again.
  // The three the backup fingerprints (the signing keys are not needed to read the rows).
  for (const name of ['jwt-secret', 'encryption-key', 'encryption-pepper']) copyFileSync(join(TEST_DATA_DIR, 'secrets', name), join(fresh, 'secrets', name))
  const restored = capture()
  t.equal(await runCli(['restore', '--in', file], env, restored.io), 0, restored.err.join('\n'))
  t.match(restored.out[0], /^restored \d+ rows/)
  const target = await build(t, { background: false, embedded: true, env: { DATABASE_URL: undefined, DATA_DIR: fresh } })
  const res = await target.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: serial.serialNumber, deviceId: 'pc' } })
  t.equal(res.json().code, 'VALID', 'the restored serial validates with the copied secrets')
})

t.test('restoreDatabase checks the header\'s secrets before reading a row', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'serials-restore-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const source = await build(t, { background: false, embedded: true })
  await createSerial(source, (await createClient(source)).id)
  const file = join(dir, 'b.gz')
  await backupDatabase(source.deps.database.db, file)
  const target = await build(t, { background: false, embedded: true })
  const lines: string[] = []
  const other = { ...target.deps.config, jwtSecret: 'another deployment, another JWT secret, 32+' }
  await t.rejects(restoreDatabase(target.deps.database.db, other, file, { progress: (l) => lines.push(l) }), { name: 'BackupSecretsError', message: /^JWT_SECRET differs from the one the backup was made with/ })
  t.same(lines, [], 'no table emptied, no row loaded')
  // A key rotation under way: the backup's key among ENCRYPTION_KEYS_PREVIOUS is accepted.
  const rotating = { ...target.deps.config, encryptionKey: Buffer.alloc(32, 7), encryptionKeysPrevious: [target.deps.config.encryptionKey] }
  await restoreDatabase(target.deps.database.db, rotating, file)
})
