// A PostgreSQL database of its own, for tests that edit or dump whole tables (tampering with the
// audit chain, pg_dump) without disturbing test files running in parallel on the shared database.
// Without TEST_DATABASE_URL the app already runs on its own in-memory PGlite: returns undefined.
import { randomBytes } from 'node:crypto'
import postgres from 'postgres'
import { databaseUrl } from '../helper.ts'

type Tap = { teardown (fn: () => unknown): void }

export async function freshDatabase (t: Tap): Promise<string | undefined> {
  if (!databaseUrl) return undefined
  const name = `serials_t_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  const url = new URL(databaseUrl)
  url.pathname = `/${name}`
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end({ timeout: 5 })
  })
  return url.toString()
}
