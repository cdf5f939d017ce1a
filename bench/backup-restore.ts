// Times `backup` and `restore` (the CLI, end to end) for N serials with one device each, on a
// fresh PostgreSQL database: `BENCH_DATABASE_URL=postgres://…/postgres SERIALS=100000 npm run -s cli…`
//   npx tsx bench/backup-restore.ts
// Serials are issued through the service (createSerials, 10,000 a call); devices are inserted in
// SQL (one per serial, active), as validations would leave them.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { runCli } from '../src/main/cli.ts'
import { seedSerials } from './seed-serials.ts'

const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const total = Number(process.env.SERIALS ?? 50_000)
const dataDir = process.env.DATA_DIR ?? '.tap/test-data'
const names = [`serials_bench_a_${randomBytes(3).toString('hex')}`, `serials_bench_b_${randomBytes(3).toString('hex')}`]
const sqlAdmin = postgres(admin, { max: 1, onnotice: () => {} })
const urlOf = (name: string) => { const u = new URL(admin); u.pathname = `/${name}`; return u.toString() }
const dir = mkdtempSync(join(tmpdir(), 'serials-bench-'))
try {
  for (const n of names) await sqlAdmin.unsafe(`create database ${n}`)
  const env = (url: string) => ({ NODE_ENV: 'test', DATA_DIR: dataDir, DATABASE_URL: url, LOG_LEVEL: 'silent' })
  const seedStart = performance.now()
  const { db } = await seedSerials(urlOf(names[0]!), total, dataDir)
  await db.end()
  process.stderr.write(`seeded ${total} serials with one device each in ${Math.round(performance.now() - seedStart)} ms\n`)

  const file = join(dir, 'bench.backup.gz')
  const io = { out: (l: string) => process.stdout.write(`${l}\n`), err: () => {} }
  let t0 = performance.now()
  if (await runCli(['backup', '--out', file], env(urlOf(names[0]!)), io) !== 0) throw new Error('backup failed')
  const backupMs = performance.now() - t0
  t0 = performance.now()
  if (await runCli(['restore', '--in', file], env(urlOf(names[1]!)), io) !== 0) throw new Error('restore failed')
  const restoreMs = performance.now() - t0
  process.stdout.write(`${JSON.stringify({ serials: total, devices: total, backupSeconds: +(backupMs / 1000).toFixed(1), restoreSeconds: +(restoreMs / 1000).toFixed(1), fileMB: +(statSync(file).size / 1e6).toFixed(1) })}\n`)
} finally {
  for (const n of names) await sqlAdmin.unsafe(`drop database if exists ${n} with (force)`)
  await sqlAdmin.end()
  rmSync(dir, { recursive: true, force: true })
}
