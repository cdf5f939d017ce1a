// Times `export` and `import` (the CLI, end to end) of one client with N serials, one device and
// one usage event each, from one fresh PostgreSQL database into another with OTHER secrets:
//   BENCH_DATABASE_URL=postgres://…/postgres SERIALS=100000 npx tsx bench/export-import.ts
// Serials are issued through the service (createSerials, 10,000 a call); devices and usage events
// are inserted in SQL (one each per serial), as validations and usage calls would leave them.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { runCli } from '../src/main/cli.ts'
import { seedSerials } from './seed-serials.ts'

const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const total = Number(process.env.SERIALS ?? 10_000)
const dataDir = process.env.DATA_DIR ?? '.tap/test-data'
const names = [`serials_bench_x_${randomBytes(3).toString('hex')}`, `serials_bench_y_${randomBytes(3).toString('hex')}`]
const sqlAdmin = postgres(admin, { max: 1, onnotice: () => {} })
const urlOf = (name: string) => { const u = new URL(admin); u.pathname = `/${name}`; return u.toString() }
// The target deployment's own secrets: everything encrypted or hashed is redone on import.
const targetSecrets = { ENCRYPTION_PEPPER: randomBytes(24).toString('hex'), ENCRYPTION_KEY: randomBytes(32).toString('hex'), JWT_SECRET: randomBytes(24).toString('hex') }
const signingKey = randomBytes(32).toString('base64')
const dir = mkdtempSync(join(tmpdir(), 'serials-bench-'))
try {
  for (const n of names) await sqlAdmin.unsafe(`create database ${n}`)
  // Both operators hold the signing key (`--key-env`): the import checks the file's signature.
  const env = (url: string, extra: Record<string, string> = {}) => ({ NODE_ENV: 'test', DATA_DIR: dataDir, DATABASE_URL: url, LOG_LEVEL: 'silent', EXPORT_KEY: signingKey, ...extra })
  const seedStart = performance.now()
  const { clientId, db } = await seedSerials(urlOf(names[0]!), total, dataDir)
  await db.unsafe(`insert into usage_events (id, serial_id, client_id, device_id, quantity, feature)
    select 'use_' || upper(substr(md5(id || 'u'), 1, 26)), id, client_id, 'device-1', 1, 'bench' from serials`)
  await db.end()
  process.stderr.write(`seeded ${total} serials with one device and one usage event each in ${Math.round(performance.now() - seedStart)} ms\n`)

  const file = join(dir, 'client.ndjson')
  const io = { out: (l: string) => process.stdout.write(`${l}\n`), err: (l: string) => { if (!l.startsWith('export: ') && !l.startsWith('import: ')) process.stderr.write(`${l}\n`) } }
  let t0 = performance.now()
  if (await runCli(['export', '--client', clientId, '--out', file, '--key-env', 'EXPORT_KEY'], env(urlOf(names[0]!)), io) !== 0) throw new Error('export failed')
  const exportMs = performance.now() - t0
  // The first of import's two passes alone: signature and every row, no database.
  t0 = performance.now()
  if (await runCli(['verify-export', '--in', file, '--key-env', 'EXPORT_KEY'], env(urlOf(names[1]!)), io) !== 0) throw new Error('verify-export failed')
  const verifyMs = performance.now() - t0
  t0 = performance.now()
  if (await runCli(['import', '--in', file, '--key-env', 'EXPORT_KEY'], env(urlOf(names[1]!), targetSecrets), io) !== 0) throw new Error('import failed')
  const importMs = performance.now() - t0
  process.stdout.write(`${JSON.stringify({ serials: total, devices: total, usageEvents: total, exportSeconds: +(exportMs / 1000).toFixed(1), verifySeconds: +(verifyMs / 1000).toFixed(1), importSeconds: +(importMs / 1000).toFixed(1), fileMB: +(statSync(file).size / 1e6).toFixed(1) })}\n`)
} finally {
  for (const n of names) await sqlAdmin.unsafe(`drop database if exists ${n} with (force)`)
  await sqlAdmin.end()
  rmSync(dir, { recursive: true, force: true })
}
