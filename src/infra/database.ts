// One interface over two drivers: postgres.js (pooled, production) and PGlite (embedded, quick start).
// The same Drizzle schema, migrations and queries run on both.
import { existsSync } from 'node:fs'
import { mkdir, open, readFile, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { fileURLToPath } from 'node:url'
import { sql, type SQL } from 'drizzle-orm'
import type { PgAsyncDatabase, PgAsyncTransaction } from 'drizzle-orm/pg-core'
import type { PgQueryResultHKT } from 'drizzle-orm/pg-core/session'
import { relations } from '../../schema/index.ts'
import type postgres from 'postgres'
import type { Config } from '../config/config.ts'
import { ADVISORY_LOCKS } from './advisory-locks.ts'
import { createDatabaseGuard, type DatabaseGuard, type TxState } from './database-guard.ts'
import { childSpan, endWith, tracingEnabled } from './tracing.ts'

export type Db = PgAsyncDatabase<PgQueryResultHKT, typeof relations>
export type Tx = PgAsyncTransaction<PgQueryResultHKT, typeof relations>
/** Either the database or an open transaction: services accept both. */
export type Executor = Db | Tx

export interface IDatabase {
  readonly kind: 'postgres' | 'pglite'
  readonly db: Db
  /** Read replica for analytics and lists when DATABASE_READ_URL is set; otherwise db. */
  readonly readDb: Db
  /**
   * Point reads on the validation hot path (never transactions): a small pool whose connections
   * pipeline queries, so one event-loop turn sends many lookups in one write (DB_LOOKUP_POOL_MAX).
   */
  readonly lookupDb: Db
  /**
   * The main pool with every statement prepared (once per connection, then pipelined). Only for
   * statements whose text never varies: each distinct text stays cached on each connection.
   */
  readonly preparedDb: Db
  migrate (): Promise<void>
  /** Round-trip time in ms; rejects when the database does not answer within timeoutMs. */
  ping (timeoutMs?: number): Promise<number>
  /**
   * Time in ms of a write that needs new disk space (a row in a fresh temporary table, rolled
   * back); rejects when the database cannot write (disk full, I/O error, read-only) or does not
   * answer within timeoutMs.
   */
  probeWrites (timeoutMs?: number): Promise<number>
  close (): Promise<void>
  /** Statements issued through Drizzle since start: lets tests prove batching (N+1 freedom). */
  readonly stats: { queries: number }
}

export function migrationsFolder (): string {
  const candidates = ['../../migrations', '../../../migrations'].map((p) => fileURLToPath(new URL(p, import.meta.url)))
  const found = candidates.find((p) => existsSync(p))
  if (!found) throw new Error(`migrations folder not found (looked in ${candidates.join(', ')})`)
  return found
}

/** Rows of a raw `execute`, whichever driver ran it (postgres.js returns an array, PGlite `{ rows }`). */
export function rowsOf<T> (result: unknown): T[] {
  if (Array.isArray(result)) return result as T[]
  return ((result as { rows?: T[] }).rows ?? [])
}

/**
 * The SQLSTATE of a failed statement (e.g. '23505'), from the driver's error or from the
 * DrizzleQueryError that wraps it (its `cause`); undefined for any other error.
 */
export function pgErrorCode (error: unknown): string | undefined {
  const e = error as { code?: unknown, cause?: { code?: unknown } } | null | undefined
  const code = typeof e?.code === 'string' ? e.code : e?.cause?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

export async function queryRows<T> (db: Executor, query: SQL): Promise<T[]> {
  return rowsOf<T>(await db.execute(query))
}

function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function timedPing (db: Db, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now()
  await withTimeout(db.execute(sql`select 1`), timeoutMs, what)
  return Math.round((performance.now() - start) * 100) / 100
}

/** Thrown to end the write probe's transaction: nothing it wrote is kept. */
class ProbeRollback extends Error {}

/**
 * A write that must extend a file: the first row of a new relation needs a new page, so it fails
 * on a full disk (53100), an I/O error (58030) or a read-only server (25006) even where updating
 * an existing row would still fit in place.
 */
async function timedWriteProbe (db: Db, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now()
  const write = db.transaction(async (tx) => {
    await tx.execute(sql`create temporary table serials_write_probe (at timestamptz) on commit drop`)
    await tx.execute(sql`insert into serials_write_probe values (now())`)
    throw new ProbeRollback('write probe done')
  }).catch((error: unknown) => { if (!(error instanceof ProbeRollback)) throw error })
  await withTimeout(write, timeoutMs, `${what} write`)
  return Math.round((performance.now() - start) * 100) / 100
}

function queryCounter () {
  const stats = { queries: 0 }
  return { stats, logger: { logQuery: () => { stats.queries++ } } }
}

type PgClient = postgres.Sql

/**
 * The postgres.js client as Drizzle sees it: with `prepared`, every statement is prepared (see
 * lookupDb); with tracing on, every statement inside a traced request gets a span, transactions
 * included; with a guard, every statement and transaction is bounded by it (database-guard.ts).
 * Otherwise the client itself.
 */
function wrapClient (sql: PgClient, prepared: boolean, guard?: DatabaseGuard, tx?: TxState): PgClient {
  if (!prepared && !tracingEnabled() && !guard) return sql
  return new Proxy(sql, {
    get (target, prop) {
      if (prop === 'unsafe') {
        return (query: string, params?: unknown[], opts?: { prepare?: boolean }) => {
          const refused = guard?.refusal(tx)
          if (refused) return rejectedQuery(refused)
          const pending = target.unsafe(query, params as never, prepared ? { ...opts, prepare: true } : opts)
          guard?.track(pending, tx)
          const span = childSpan(`postgresql ${query.trimStart().split(/\s/, 1)[0]!.toLowerCase()}`, { 'db.system.name': 'postgresql', 'db.query.text': query })
          endWith(span, pending)
          return pending
        }
      }
      if (prop === 'begin' && guard) {
        return (...args: unknown[]) => {
          const fn = args.pop() as (tx: PgClient) => Promise<unknown>
          return guard.transaction((body) => (target.begin as (...a: unknown[]) => Promise<unknown>)(...args, body),
            (inner, state) => fn(wrapClient(inner as PgClient, prepared, guard, state)))
        }
      }
      if (prop === 'begin' && tracingEnabled()) {
        return (...args: unknown[]) => {
          const fn = args.pop() as (tx: PgClient) => unknown
          return (target.begin as (...a: unknown[]) => unknown)(...args, (tx: PgClient) => fn(wrapClient(tx, prepared)))
        }
      }
      // A nested transaction (Drizzle's tx.transaction): its statements are bounded as well.
      if (prop === 'savepoint' && guard && tx) {
        return (...args: unknown[]) => {
          const fn = args.pop() as (sp: PgClient) => Promise<unknown>
          const refused = guard.refusal(tx)
          if (refused) return Promise.reject(refused)
          return (target as unknown as { savepoint: (...a: unknown[]) => unknown }).savepoint(...args,
            (sp: PgClient) => guard.savepoint(tx, () => fn(wrapClient(sp, prepared, guard, tx))))
        }
      }
      return Reflect.get(target, prop, target)
    }
  })
}

/** A statement refused before it was sent, shaped as the postgres.js Query Drizzle expects. */
function rejectedQuery (error: Error): Promise<never> {
  const rejected = Promise.reject(error)
  return Object.assign(rejected, { values: () => rejected, raw: () => rejected, execute: () => rejected, cancel: () => {} })
}

async function createPostgres (config: Extract<Config['database'], { kind: 'postgres' }>, readUrl: string | undefined, log?: GuardLog): Promise<IDatabase> {
  const { default: postgres } = await import('postgres')
  const { drizzle } = await import('drizzle-orm/postgres-js')
  const { timeouts } = config
  // Reconnect delays as postgres.js's (3^retries / 100 s, with jitter) but at most 0.5 s instead of
  // 20 s: its retry count grows through an outage, and a connection's next attempt waits that long
  // after PostgreSQL is back. While the guard holds PostgreSQL unavailable nothing is sent anyway.
  const backoff = (retries: number) => Math.min(3 ** retries / 100, 0.5) * (0.5 + Math.random() / 2)
  const options = { max: config.poolMax, onnotice: () => {}, connect_timeout: timeouts.connectMs / 1000, idle_timeout: 60, backoff }
  // One round trip on a connection of its own, closed at once: the pool's may all be stuck.
  const probeOf = (url: string) => async () => {
    const one = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: timeouts.connectMs / 1000, fetch_types: false })
    try { await one`select 1` } finally { void one.end({ timeout: 0 }) }
  }
  const guard = createDatabaseGuard({ what: 'PostgreSQL', timeouts, probe: probeOf(config.url), log })
  const readGuard = readUrl ? createDatabaseGuard({ what: 'PostgreSQL replica', timeouts, probe: probeOf(readUrl), log }) : undefined
  // postgres.js's types do not list `socket` (a factory it calls for every connection it opens).
  const guarded = (g: DatabaseGuard, extra: { max?: number } = {}) => ({ ...options, ...extra, socket: g.socket }) as typeof options
  const client = postgres(config.url, guarded(guard))
  const { stats, logger } = queryCounter()
  const db = drizzle({ client: wrapClient(client, false, guard), relations, logger }) as unknown as Db
  const readClient = readUrl ? postgres(readUrl, guarded(readGuard!)) : undefined
  const readDb = readClient ? drizzle({ client: wrapClient(readClient, false, readGuard), relations }) as unknown as Db : db
  const lookupClient = postgres(config.url, guarded(guard, { max: config.lookupPoolMax }))
  // Drizzle runs its queries unnamed (prepare: false), and postgres.js then waits for a Describe
  // round trip before every parameterised query, which also stops pipelining. The hot path's few
  // fixed statements are prepared instead: once per connection, then pipelined.
  const preparing = (sql: typeof client) => wrapClient(sql, true, guard)
  const lookupDb = drizzle({ client: preparing(lookupClient), relations, logger }) as unknown as Db
  const preparedDb = drizzle({ client: preparing(client), relations, logger }) as unknown as Db
  let closed: Promise<void> | undefined
  return {
    kind: 'postgres',
    stats,
    db,
    readDb,
    lookupDb,
    preparedDb,
    async migrate () {
      const { migrate } = await import('drizzle-orm/postgres-js/migrator')
      const one = postgres(config.url, { ...options, max: 1 })
      try {
        const migrator = drizzle({ client: one, relations })
        await one`select pg_advisory_lock(${ADVISORY_LOCKS.migration})`
        await migrate(migrator, { migrationsFolder: migrationsFolder() })
        await one`select pg_advisory_unlock(${ADVISORY_LOCKS.migration})`
      } finally {
        await one.end({ timeout: 5 })
      }
    },
    ping: async (timeoutMs = 1500) => {
      if (guard.down) throw new Error(`PostgreSQL unavailable since ${new Date(guard.down.since).toISOString()}: ${guard.down.reason}`)
      return timedPing(db, timeoutMs, 'PostgreSQL')
    },
    probeWrites: (timeoutMs = 1500) => timedWriteProbe(db, timeoutMs, 'PostgreSQL'),
    async close () {
      closed ??= Promise.all([client.end({ timeout: 5 }), lookupClient.end({ timeout: 5 }), readClient?.end({ timeout: 5 })]).then(() => {
        guard.close()
        readGuard?.close()
      })
      return closed
    }
  }
}

/**
 * The embedded database is held by another live process. PGlite is single-process: a second
 * process on the same directory would see a stale copy and overwrite the first one's writes.
 */
export class DatabaseLockedError extends Error {
  constructor (readonly lockFile: string, readonly pid: number) {
    super(`the embedded database ${lockFile.replace(/\.lock$/, '')} is in use by another process (pid ${pid})`)
    this.name = 'DatabaseLockedError'
  }
}

/** True while a process with this id exists (EPERM: it exists but belongs to another user). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Takes `<dir>.lock` (created exclusively, holding this pid) or throws DatabaseLockedError. A lock
 * whose pid is gone, or that names another host (a copied DATA_DIR), is stale and taken over.
 * Returns the release function, which removes the file only while it still names this process.
 */
export async function lockDataDir (dir: string): Promise<() => Promise<void>> {
  const file = `${dir}.lock`
  const mine = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() })
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600)
      try { await handle.writeFile(`${mine}\n`) } finally { await handle.close() }
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw error
    }
    let holder: { pid?: unknown, host?: unknown } = {}
    try { holder = JSON.parse(await readFile(file, 'utf8')) as typeof holder } catch { /* half-written or garbage: stale */ }
    const pid = typeof holder.pid === 'number' ? holder.pid : undefined
    if (pid !== undefined && holder.host === hostname() && alive(pid)) throw new DatabaseLockedError(file, pid)
    await unlink(file).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw error })
  }
  return async () => {
    const held = await readFile(file, 'utf8').catch(() => '')
    if (held.trim() === mine) await unlink(file).catch(() => {})
  }
}

/** PGlite with a span per statement inside a traced request (transactions included). */
function tracePglite<T extends object> (pglite: T): T {
  return new Proxy(pglite, {
    get (target, prop) {
      const value = Reflect.get(target, prop, target) as unknown
      if (prop === 'query' || prop === 'exec') {
        return (query: string, ...rest: unknown[]) => {
          const pending = (value as (...a: unknown[]) => Promise<unknown>).call(target, query, ...rest)
          endWith(childSpan(`postgresql ${query.trimStart().split(/\s/, 1)[0]!.toLowerCase()}`, { 'db.system.name': 'postgresql', 'db.query.text': query }), pending)
          return pending
        }
      }
      if (prop === 'transaction') {
        return (fn: (tx: object) => unknown) => (value as (f: (tx: object) => unknown) => unknown).call(target, (tx: object) => fn(tracePglite(tx)))
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
}

async function createPglite (config: Extract<Config['database'], { kind: 'pglite' }>): Promise<IDatabase> {
  const { PGlite } = await import('@electric-sql/pglite')
  const { drizzle } = await import('drizzle-orm/pglite')
  let unlock = async () => {}
  if (config.dataDir) {
    await mkdir(config.dataDir, { recursive: true })
    unlock = await lockDataDir(config.dataDir)
  }
  let client: InstanceType<typeof PGlite>
  try {
    client = config.dataDir ? new PGlite(config.dataDir) : new PGlite()
    await client.waitReady
  } catch (error) {
    await unlock()
    throw error
  }
  const { stats, logger } = queryCounter()
  const db = drizzle({ client: tracingEnabled() ? tracePglite(client) : client, relations, logger }) as unknown as Db
  let closed: Promise<void> | undefined
  return {
    kind: 'pglite',
    stats,
    db,
    readDb: db,
    lookupDb: db,
    preparedDb: db,
    async migrate () {
      const { migrate } = await import('drizzle-orm/pglite/migrator')
      await migrate(drizzle({ client, relations }), { migrationsFolder: migrationsFolder() })
    },
    ping: (timeoutMs = 1500) => timedPing(db, timeoutMs, 'PGlite'),
    probeWrites: (timeoutMs = 1500) => timedWriteProbe(db, timeoutMs, 'PGlite'),
    // Closing matters: PGlite's WASM timer otherwise keeps the process alive for ~10 s.
    close: () => {
      closed ??= (client.closed ? Promise.resolve() : client.close()).finally(unlock)
      return closed
    }
  }
}

/** Where the guard reports PostgreSQL becoming unavailable and answering again. */
export type GuardLog = NonNullable<Parameters<typeof createDatabaseGuard>[0]['log']>

export async function createDatabase (config: Config, log?: GuardLog): Promise<IDatabase> {
  return config.database.kind === 'postgres'
    ? createPostgres(config.database, config.databaseReadUrl, log)
    : createPglite(config.database)
}
