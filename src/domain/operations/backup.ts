// `backup` / `restore`: every table of the public schema as gzip'd NDJSON, read in one
// REPEATABLE READ, read-only transaction (a consistent snapshot while the service keeps writing).
// Rows are copied as they are stored, so encrypted columns stay encrypted and the file is useless
// without the same ENCRYPTION_KEY and ENCRYPTION_PEPPER (the manifest carries their fingerprints).
//
// File layout, one JSON object per line:
//   {"type":"header","format":"serials-backup","version":1,"createdAt","schemaVersion","fingerprints",tables:[…]}
//   {"t":"<table>","r":{…row…}}                      (tables in foreign-key order)
//   {"type":"manifest","rowCounts":{…},"sha256":"…"}  (SHA-256 of every line above, newlines included)
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import { stat } from 'node:fs/promises'
import { PassThrough, Transform } from 'node:stream'
import { sql } from 'drizzle-orm'
import type { Config } from '../../config/config.ts'
import { queryRows, type Db, type Executor } from '../../infra/database.ts'
import { boundedLines, GiB, MiB } from './bounded-lines.ts'
import { createOutputFile, refuseOutputPath, type OutputFile } from './output-file.ts'
import type { Progress } from './progress.ts'
import { checkSecretFingerprints, differingSecrets, type SecretName } from './secret-fingerprints.ts'

export const BACKUP_FORMAT = 'serials-backup'
const FETCH = 1000
const INSERT_BATCH = 500
const ROW = /^\{"t":("(?:[^"\\]|\\.)*"),"r":/
/**
 * Longest line a restore reads. Rows are copied as stored, and one stored answer of a bulk
 * createSerials (idempotency_keys) holds up to 10,000 serials: a few MiB, never 64.
 */
export const RESTORE_MAX_LINE_BYTES = 64 * MiB
/** Default bound on a backup's uncompressed text (`restore --max-bytes`). */
export const DEFAULT_RESTORE_MAX_BYTES = 64 * GiB
/**
 * Most text bytes per compressed byte: gzip'd NDJSON of this service's rows (ciphertext, ids,
 * hashes) inflates a few times; a compression bomb, a thousand times and more. Checked once the
 * text passes 16 MiB.
 */
export const RESTORE_MAX_RATIO = 100

/** The bounds every read of a backup's text obeys; `compressedBytes`: the file's bytes read so far. */
function restoreBounds (compressedBytes: () => number, maxBytes = DEFAULT_RESTORE_MAX_BYTES) {
  return {
    maxLineBytes: RESTORE_MAX_LINE_BYTES,
    maxBytes,
    maxRatio: { ratio: RESTORE_MAX_RATIO, compressedBytes, ratioAfterBytes: 16 * MiB },
    error: (message: string) => new BackupError(message)
  }
}

export type { Progress } from './progress.ts'

export interface BackupHeader {
  type: 'header'
  format: string
  version: number
  createdAt: string
  schemaVersion: string | null
  fingerprints: Record<string, string>
  tables: string[]
}

export interface BackupManifest { type: 'manifest', rowCounts: Record<string, number>, sha256: string }

/** A backup file that cannot be restored here; the message says why. */
export class BackupError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'BackupError'
  }
}

export async function schemaVersion (db: Executor): Promise<string | null> {
  const rows = await queryRows<{ name: string | null, hash: string }>(db,
    sql`select name, hash from drizzle.__drizzle_migrations order by created_at desc, id desc limit 1`)
  return rows[0] ? (rows[0].name ?? rows[0].hash) : null
}

/**
 * Tables of the public schema, parents before children (so restore never breaks a foreign key).
 * A partitioned table counts once: its partitions (usage_events_YYYY_MM, …) are read and written
 * through it, and listing them too would copy their rows twice.
 */
export async function tablesInOrder (db: Executor): Promise<string[]> {
  const tables = (await queryRows<{ name: string }>(db, sql`select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'
      and table_name not in (select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and c.relispartition)
    order by table_name`)).map((r) => r.name)
  const edges = await queryRows<{ child: string, parent: string }>(db, sql`select c.relname as child, p.relname as parent
    from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class p on p.oid = k.confrelid
    join pg_namespace n on n.oid = c.relnamespace
    where k.contype = 'f' and n.nspname = 'public' and c.relname <> p.relname`)
  const ordered: string[] = []
  const visiting = new Set<string>()
  const visit = (table: string) => {
    if (ordered.includes(table) || visiting.has(table)) return
    visiting.add(table)
    for (const e of edges) if (e.child === table) visit(e.parent)
    ordered.push(table)
  }
  for (const table of tables) visit(table)
  return ordered
}

/**
 * Writes the snapshot to `file` (mode 0600; never through a symbolic link, never over an existing
 * file unless `force`); returns the manifest.
 */
export async function backupDatabase (db: Db, file: string, progress: Progress = () => {}, options: { force?: boolean } = {}): Promise<BackupManifest> {
  const refusal = await refuseOutputPath(file, options.force === true)
  if (refusal) throw new BackupError(refusal)
  const output: OutputFile = await createOutputFile(file, { force: options.force, error: (message) => new BackupError(message) })
  const gzip = createGzip()
  const done = pipeline(gzip, output.stream())
  const hash = createHash('sha256')
  const write = async (line: string) => {
    hash.update(line)
    if (!gzip.write(line)) await once(gzip, 'drain')
  }
  const rowCounts: Record<string, number> = {}
  try {
    await db.transaction(async (tx) => {
      await tx.execute(sql`set transaction isolation level repeatable read, read only`)
      const tables = await tablesInOrder(tx)
      const fingerprints = Object.fromEntries((await queryRows<{ name: string, fingerprint: string }>(tx,
        sql`select name, fingerprint from secret_fingerprints order by name`)).map((r) => [r.name, r.fingerprint]))
      const header: BackupHeader = { type: 'header', format: BACKUP_FORMAT, version: 1, createdAt: new Date().toISOString(), schemaVersion: await schemaVersion(tx), fingerprints, tables }
      await write(`${JSON.stringify(header)}\n`)
      // Exact counts in the same snapshot: the progress bar's total.
      let total = 0
      for (const table of tables) {
        const [row] = await queryRows<{ n: number }>(tx, sql`select count(*)::int as n from ${sql.identifier(table)}`)
        total += row?.n ?? 0
      }
      let written = 0
      for (const table of tables) {
        let count = 0
        await tx.execute(sql`declare backup_rows no scroll cursor for select to_jsonb(t)::text as r from ${sql.identifier(table)} t`)
        for (;;) {
          const rows = await queryRows<{ r: string }>(tx, sql.raw(`fetch ${FETCH} from backup_rows`))
          for (const row of rows) await write(`{"t":${JSON.stringify(table)},"r":${row.r}}\n`)
          count += rows.length
          written += rows.length
          if (rows.length < FETCH) break
          progress(`backup: ${table} ${count} rows`, { done: written, total, tick: count % 50_000 !== 0 })
        }
        await tx.execute(sql`close backup_rows`)
        rowCounts[table] = count
        progress(`backup: ${table} ${count} rows`, { done: written, total })
      }
    })
    const manifest: BackupManifest = { type: 'manifest', rowCounts, sha256: hash.digest('hex') }
    gzip.end(`${JSON.stringify(manifest)}\n`)
    await done
    await output.commit()
    return manifest
  } catch (error) {
    gzip.destroy(error as Error)
    await done.catch(() => {})
    // Never half a backup at its path (a file that was there stays as it was).
    await output.abort()
    throw error
  }
}

/** Reads and checks the header line only: a wrong file or a mismatch is found before any work. */
export async function readBackupHeader (file: string): Promise<BackupHeader> {
  const input = createReadStream(file)
  const gunzip = createGunzip()
  let read = 0
  input.on('data', (chunk) => { read += chunk.length })
  // Bounded: a bomb, or a first line without end, stops at once instead of filling memory.
  const lines = boundedLines(input.pipe(gunzip), restoreBounds(() => read))
  // A stream error (missing file, not gzip) rejects the wait below instead of going unhandled.
  const failed = new Promise<never>((_resolve, reject) => { input.once('error', reject); gunzip.once('error', reject) })
  try {
    const first = await Promise.race([lines.next().then((r) => r.done === true ? undefined : r.value), failed])
    return parseHeader(first)
  } catch (error) {
    if (error instanceof BackupError) throw error
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BackupError(`${file} does not exist`)
    throw new BackupError(`not a Serials backup (${(error as Error).message})`)
  } finally {
    lines.return(undefined).catch(() => {})
    input.destroy()
    gunzip.destroy()
  }
}

function parseHeader (line: string | undefined): BackupHeader {
  if (line === undefined) throw new BackupError('not a Serials backup (empty file)')
  let header: BackupHeader
  try { header = JSON.parse(line) as BackupHeader } catch { throw new BackupError('not a Serials backup (no header)') }
  if (header?.type !== 'header' || header.format !== BACKUP_FORMAT) throw new BackupError('not a Serials backup (no header)')
  if (header.version !== 1) throw new BackupError(`backup format version ${header.version} is not supported`)
  return header
}

/** "A", "A and B", "A, B and C". */
const listOf = (names: string[]) => names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`

/** The backup's rows were written with other secrets than this instance's: nothing could be read. */
export class BackupSecretsError extends BackupError {
  constructor (readonly secrets: SecretName[]) {
    super(`${listOf(secrets)} ${secrets.length === 1 ? 'differs from the one' : 'differ from those'} the backup was made with (the header's fingerprints do not match): restore with the secrets of the deployment it came from`)
    this.name = 'BackupSecretsError'
  }
}

/** Compares the header's secret fingerprints with this instance's secrets; throws BackupSecretsError. */
export function checkBackupSecrets (header: BackupHeader, config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious'>): void {
  const differ = differingSecrets(header.fingerprints ?? {}, config)
  if (differ.length > 0) throw new BackupSecretsError(differ)
}

/** Tables holding rows (the fingerprints a started service wrote do not count). */
export async function nonEmptyTables (db: Executor): Promise<string[]> {
  const found: string[] = []
  for (const table of await tablesInOrder(db)) {
    if (table === 'secret_fingerprints') continue
    const [row] = await queryRows<{ any: boolean }>(db, sql`select exists (select 1 from ${sql.identifier(table)}) as any`)
    if (row?.any) found.push(table)
  }
  return found
}

export interface RestoreOptions {
  /** Empty a non-empty database first. */
  force?: boolean
  progress?: Progress
  /** Most bytes of uncompressed text (default DEFAULT_RESTORE_MAX_BYTES). */
  maxBytes?: number
}

/**
 * Restores `file` into this (migrated) database in one transaction: nothing is kept unless the
 * checksum, the row counts and the secrets all match at the end.
 */
export async function restoreDatabase (db: Db, config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious'>, file: string, options: RestoreOptions = {}): Promise<BackupManifest> {
  const progress = options.progress ?? (() => {})
  const input = createReadStream(file)
  // Compressed bytes read of the file's size: the progress bar (the row total is only in the manifest).
  const size = (await stat(file)).size
  let read = 0
  const counter = new Transform({ transform (chunk: Buffer, _encoding, callback) { read += chunk.length; callback(null, chunk) } })
  // Read as the loop below asks for lines.
  const text = new PassThrough()
  let piping: Promise<void> = Promise.resolve()
  const hash = createHash('sha256')
  let header: BackupHeader | undefined
  let manifest: BackupManifest | undefined
  const counts: Record<string, number> = {}
  try {
    await db.transaction(async (tx) => {
      // Row texts as read: never parsed into JS numbers, so bigint and numeric values keep every digit.
      let batch: string[] = []
      let batchTable = ''
      const flush = async () => {
        if (batch.length === 0) return
        const table = sql.identifier(batchTable)
        await tx.execute(sql`insert into ${table} select * from jsonb_populate_recordset(null::${table}, ${`[${batch.join(',')}]`}::text::jsonb)`)
        counts[batchTable] = (counts[batchTable] ?? 0) + batch.length
        progress(`restore: ${batchTable} ${counts[batchTable]} rows`, { done: read, total: size, tick: counts[batchTable]! % 50_000 >= batch.length })
        batch = []
      }
      piping = pipeline(input, counter, createGunzip(), text).catch((error: unknown) => { text.destroy(error as Error) })
      // Bounded: `/dev/zero`, a line without end or a compression bomb stops at once, in one line.
      const lines = boundedLines(text, restoreBounds(() => read, options.maxBytes))
      for await (const line of lines) {
        if (manifest) throw new BackupError('data after the manifest: the file is damaged')
        if (!header) {
          hash.update(`${line}\n`)
          header = parseHeader(line)
          // Before the long work: rows written with other secrets could not be read here.
          checkBackupSecrets(header, config)
          const here = await schemaVersion(tx)
          if (header.schemaVersion !== here) throw new BackupError(`the backup's schema version ${header.schemaVersion} differs from this database's ${here}: restore with the release that made the backup`)
          const busy = await nonEmptyTables(tx)
          if (busy.length > 0) {
            if (!options.force) throw new BackupError(`the database is not empty (${busy.join(', ')} hold rows): restore into an empty database, or pass --force to replace its contents`)
            progress(`restore: emptying ${busy.length} tables (--force)`)
          }
          const all = await tablesInOrder(tx)
          await tx.execute(sql.raw(`truncate table ${all.map((t) => `"${t}"`).join(', ')} cascade`))
          continue
        }
        if (line.startsWith('{"type":"manifest"')) {
          manifest = JSON.parse(line) as BackupManifest
          continue
        }
        hash.update(`${line}\n`)
        const row = ROW.exec(line)
        if (!row || !line.endsWith('}')) throw new BackupError('a line of the backup is not a row: the file is damaged')
        const t = JSON.parse(row[1]!) as string
        const r = line.slice(row[0].length, -1)
        if (!header.tables.includes(t)) throw new BackupError(`the backup holds rows of an unknown table ${t}`)
        if (t !== batchTable) { await flush(); batchTable = t }
        batch.push(r)
        if (batch.length >= INSERT_BATCH) await flush()
      }
      await flush()
      await piping
      if (!header) throw new BackupError('not a Serials backup (empty file)')
      if (!manifest) throw new BackupError('the backup has no manifest: the file is truncated')
      if (hash.digest('hex') !== manifest.sha256) throw new BackupError('the backup\'s checksum does not match: the file is damaged')
      for (const table of header.tables) {
        if ((counts[table] ?? 0) !== (manifest.rowCounts[table] ?? 0)) throw new BackupError(`${table}: ${counts[table] ?? 0} rows restored, the manifest says ${manifest.rowCounts[table] ?? 0}`)
      }
      // Sequences (bigserial columns) continue after the restored rows.
      const serials = await queryRows<{ t: string, c: string }>(tx, sql`select table_name as t, column_name as c from information_schema.columns
        where table_schema = 'public' and column_default like 'nextval(%'`)
      for (const { t, c } of serials) {
        await tx.execute(sql`select setval(pg_get_serial_sequence(${`"${t}"`}, ${c}), coalesce((select max(${sql.identifier(c)}) from ${sql.identifier(t)}), 0) + 1, false)`)
      }
      // The restored data must be readable with this instance's secrets; otherwise nothing is kept.
      await checkSecretFingerprints(tx, config)
      progress(`restore: ${Object.values(counts).reduce((a, b) => a + b, 0)} rows in ${header.tables.length} tables, checksum verified`, { done: size, total: size })
    })
  } finally {
    input.destroy()
    text.destroy()
  }
  return manifest!
}
