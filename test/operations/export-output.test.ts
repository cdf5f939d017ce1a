// `export --out` and `backup --out` never write through a symbolic link and never replace a file
// unless --force; with --force the old file stays whole until the new one is complete.
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { backupDatabase } from '../../src/domain/operations/backup.ts'
import { exportClient } from '../../src/domain/operations/export-import.ts'
import { runCli } from '../../src/main/cli.ts'
import { build, createClient, TEST_DATA_DIR } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'

const KEY = 'shared-signing-key-0123456789abcdef'

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'serials-out-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('export and backup --out: no symbolic link, no existing file unless --force', async (t) => {
  const dir = tempDir(t)
  const url = await freshDatabase(t)
  const app = await build(t, { background: false, env: url ? { DATABASE_URL: url } : {} })
  const { db } = app.deps.database
  const cfg = app.deps.config
  const client = await createClient(app)
  const victim = join(dir, 'victim.txt')
  const link = join(dir, 'link.ndjson')
  const dangling = join(dir, 'dangling.ndjson')
  const existing = join(dir, 'existing.ndjson')
  writeFileSync(victim, 'precious\n')
  chmodSync(victim, 0o644)
  symlinkSync(victim, link)
  symlinkSync(join(dir, 'nowhere', 'file'), dangling)
  writeFileSync(existing, 'old contents\n')
  const unchanged = () => {
    t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the link\'s target is untouched')
    t.equal(statSync(victim).mode & 0o777, 0o644, 'and keeps its mode')
    t.equal(readlinkSync(link), victim, 'the link is still the link')
    t.equal(readFileSync(existing, 'utf8'), 'old contents\n', 'the existing file is untouched')
    t.same(readdirSync(dir).filter((n) => n.includes('partial')), [], 'no partial file is left')
  }

  for (const force of [false, true]) {
    await t.rejects(exportClient(db, cfg, client.id, link, { signingKey: KEY, force }), /link\.ndjson is a symbolic link: refused \(even with --force\)/, `export through a link (force ${force})`)
    await t.rejects(backupDatabase(db, link, () => {}, { force }), /is a symbolic link: refused/, `backup through a link (force ${force})`)
    await t.rejects(exportClient(db, cfg, client.id, dangling, { signingKey: KEY, force }), /is a symbolic link/, `a dangling link (force ${force})`)
  }
  t.notOk(existsSync(join(dir, 'nowhere')), 'nothing was created where the dangling link points')
  await t.rejects(exportClient(db, cfg, client.id, existing, { signingKey: KEY }), /existing\.ndjson exists: pass --force to replace it/)
  await t.rejects(backupDatabase(db, existing), /exists: pass --force to replace it/)
  await t.rejects(exportClient(db, cfg, client.id, dir, { signingKey: KEY, force: true }), /exists and is not a regular file/, 'a directory is never replaced')
  // A failed export with --force (unknown client) keeps the old file as it was.
  await t.rejects(exportClient(db, cfg, `cli_${'0'.repeat(26)}`, existing, { signingKey: KEY, force: true }), /not found/)
  unchanged()

  await exportClient(db, cfg, client.id, existing, { signingKey: KEY, force: true })
  t.match(readFileSync(existing, 'utf8'), /^\{"type":"header","format":"serials-export"/, '--force replaces the file')
  t.equal(lstatSync(existing).mode & 0o777, 0o600, 'with mode 0600')
  const backup = join(dir, 'backup.gz')
  await backupDatabase(db, backup)
  t.equal(statSync(backup).mode & 0o777, 0o600, 'a backup is 0600 too')
  await backupDatabase(db, backup, () => {}, { force: true })
  t.same(readdirSync(dir).filter((n) => n.includes('partial')), [], 'no partial file is left after a forced replace')

  // The CLI: one line, exit code 1.
  const log: string[] = []
  const io = { out: (l: string) => log.push(l), err: (l: string) => log.push(l) }
  const env = { NODE_ENV: 'test', DATA_DIR: url ? TEST_DATA_DIR : join(dir, 'data'), LOG_LEVEL: 'silent', EXPORT_KEY: KEY, ...(url ? { DATABASE_URL: url } : {}) }
  // Embedded: the CLI opens a PGlite directory of its own (the app's database is in memory).
  t.equal(await runCli(['migrate'], env, io), 0, log.join('\n'))
  t.equal(await runCli(['export', '--client', client.id, '--out', link, '--key-env', 'EXPORT_KEY', '--force'], env, io), 1)
  t.match(log.pop(), /^export: .*link\.ndjson is a symbolic link: refused/)
  t.equal(await runCli(['backup', '--out', backup], env, io), 1)
  t.match(log.pop(), /backup\.gz exists: pass --force to replace it/)
  t.equal(await runCli(['backup', '--out', backup, '--force'], env, io), 0, log.join('\n'))
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the link\'s target is still untouched')
})

t.test('createOutputFile: the kernel refuses what appears between the check and the open', async (t) => {
  const { createOutputFile } = await import('../../src/domain/operations/output-file.ts')
  const dir = tempDir(t)
  const path = join(dir, 'out')
  const error = (message: string) => new Error(message)
  const first = await createOutputFile(path, { error })
  await t.rejects(createOutputFile(path, { error }), /exists: pass --force/)
  const stream = first.stream()
  await new Promise<void>((resolve, reject) => stream.end('one\n', (e?: Error | null) => e ? reject(e) : resolve()))
  await first.commit()
  t.equal(readFileSync(path, 'utf8'), 'one\n')
  const replaced = await createOutputFile(path, { force: true, error })
  // Someone puts a link at the path while the replacement is written: it is replaced, never followed.
  rmSync(path)
  symlinkSync(join(dir, 'target'), path)
  const s2 = replaced.stream()
  await new Promise<void>((resolve, reject) => s2.end('two\n', (e?: Error | null) => e ? reject(e) : resolve()))
  await replaced.commit()
  t.notOk(lstatSync(path).isSymbolicLink(), 'the link was replaced by the file')
  t.notOk(existsSync(join(dir, 'target')), 'nothing was written where the link pointed')
  t.equal(readFileSync(path, 'utf8'), 'two\n')
  const aborted = await createOutputFile(join(dir, 'gone'), { error })
  await aborted.abort()
  t.notOk(existsSync(join(dir, 'gone')), 'abort removes what it created')
})
