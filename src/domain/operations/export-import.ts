// `export` / `import`: one client's data moved between deployments as NDJSON.
//
// The target deployment has its own ENCRYPTION_KEY and ENCRYPTION_PEPPER, so encrypted and hashed
// columns cannot travel as stored: the export decrypts them (serial numbers, the contact e-mail,
// device info, webhook secrets) and the import re-encrypts and re-hashes them with the target's
// secrets. The file therefore holds serial numbers in clear text: it is written with mode 0600,
// and `passphrase` encrypts it whole (see export-crypto.ts). API keys are stored as hashes keyed by
// the pepper and cannot be re-created: they are left out (listed in the header's `notExported`).
//
// File layout, one JSON object per line (same framing and checksum as backup.ts):
//   {"type":"header","format":"serials-export","version":1,"createdAt","clientId","clientNumber","schemaVersion","tables":[…],"notExported":[…]}
//   {"t":"<table>","r":{…row…}}                      (tables in the order of EXPORT_TABLES)
//   {"type":"manifest","rowCounts":{…},"sha256":"…"}  (SHA-256 of every line above, newlines included)
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import { open, stat, unlink, type FileHandle } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { PassThrough, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { sql, type SQL } from 'drizzle-orm'
import { appendAudit, type AuditInput } from '../audit/audit-log.ts'
import type { Config } from '../../config/config.ts'
import type { Actor } from '../../kernel/access.ts'
import { createKeyring, lookupHash, type IKeyring } from '../../infra/crypto.ts'
import { queryRows, type Db, type Executor } from '../../infra/database.ts'
import { ID_PATTERN } from '../../kernel/ids.ts'
import { normaliseSerialNumber } from '../serials/serial-number.ts'
import { schemaVersion } from './backup.ts'
import { decryptingStream, encryptingStream, ENCRYPTED_EXPORT_MAGIC, readEncryptedHeader } from './export-crypto.ts'
import type { Progress } from './progress.ts'
import { checkSecretFingerprints } from './secret-fingerprints.ts'

export const EXPORT_FORMAT = 'serials-export'
const FETCH = 1000
const INSERT_BATCH = 500
const ROW = /^\{"t":("(?:[^"\\]|\\.)*"),"r":/

export interface ExportHeader {
  type: 'header'
  format: string
  version: number
  createdAt: string
  clientId: string
  clientNumber: string
  schemaVersion: string | null
  tables: string[]
  notExported: Array<{ what: string, count?: number, reason: string }>
}

export interface ExportManifest { type: 'manifest', rowCounts: Record<string, number>, sha256: string }

/** An export that cannot be written or imported here; the message says why (one line). */
export class ExportError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ExportError'
  }
}

interface TableSpec {
  table: string
  /** The client's rows, as a condition on alias `t`. */
  where (clientId: string): SQL
  /** Constant column list for a stable order (new ids and seqs on the target follow it). */
  order: string
  /** Columns left out of the file: positions the target assigns anew, hashes it recomputes. */
  drop?: string[]
  /** Of `drop`, those the import computes itself (the others take the target's defaults). */
  derived?: string[]
  /** Encrypted column → the field holding its clear text in the file. */
  encrypted?: Record<string, string>
  /** Global rows (policies): a row whose id the target already has is kept as the target has it. */
  shared?: boolean
}

const ofClient = (c: string) => sql`t.client_id = ${c}`
const ofClientSerials = (c: string) => sql`t.serial_id in (select s.id from serials s where s.client_id = ${c})`

/** What moves, parents before children. Tables a deployment does not have (yet) are skipped. */
export const EXPORT_TABLES: readonly TableSpec[] = [
  { table: 'clients', where: (c) => sql`t.id = ${c}`, order: 'id', encrypted: { contact_email_enc: 'contact_email' } },
  // Policies are vendor-wide templates: only those the client's serials use.
  { table: 'policies', where: (c) => sql`t.id in (select s.policy_id from serials s where s.client_id = ${c})`, order: 'id', shared: true },
  { table: 'serials', where: ofClient, order: 'id', drop: ['number_hash'], derived: ['number_hash'], encrypted: { number_enc: 'number' } },
  { table: 'devices', where: ofClientSerials, order: 'id', encrypted: { device_info_enc: 'device_info' } },
  { table: 'device_activations', where: ofClientSerials, order: 'id', drop: ['id'] },
  { table: 'usage_events', where: ofClient, order: 'seq', drop: ['seq'] },
  { table: 'validation_stats', where: ofClient, order: 'serial_id, hour, code' },
  { table: 'usage_daily', where: ofClient, order: 'serial_id, day' },
  { table: 'usage_client_hourly', where: ofClient, order: 'hour' },
  { table: 'usage_device_days', where: ofClient, order: 'serial_id, day, device_id' },
  { table: 'validation_client_hourly', where: ofClient, order: 'hour, code' },
  { table: 'validation_client_minutely', where: ofClient, order: 'minute, code' },
  { table: 'webhooks', where: ofClient, order: 'id', encrypted: { secret_enc: 'secret' } },
  // Appended to the target's own chain as new entries (see importClient), never copied verbatim.
  { table: 'audit_log', where: ofClient, order: 'seq', drop: ['seq', 'prev_hash', 'hash'] }
]

/** Tables that do not move, and why (docs/operations.md says the same). */
export const NOT_EXPORTED: Readonly<Record<string, string>> = {
  api_keys: 'API keys are stored as hashes keyed by ENCRYPTION_PEPPER and cannot be re-created: re-issue the client\'s keys on the target',
  webhook_deliveries: 'delivery history refers to events of the source deployment',
  outbox: 'events already relayed on the source deployment',
  idempotency_keys: 'stored answers of retried requests (they can hold serial numbers); retries do not cross deployments',
  secret_fingerprints: 'each deployment has its own secrets'
}

async function existingTables (db: Executor): Promise<Set<string>> {
  return new Set((await queryRows<{ name: string }>(db, sql`select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'`)).map((r) => r.name))
}

function dropSql (spec: TableSpec): SQL {
  // Constant column names of EXPORT_TABLES, never input.
  return spec.drop ? sql.raw(` - '{${spec.drop.join(',')}}'::text[]`) : sql.raw('')
}

export interface ExportOptions {
  progress?: Progress
  /** Encrypts the whole file (AES-256-GCM, key from scrypt). */
  passphrase?: string
}

/** Writes one client's data to `file` (mode 0600); returns the manifest. */
export async function exportClient (db: Db, config: Pick<Config, 'encryptionKey' | 'encryptionKeysPrevious'>, clientId: string, file: string, options: ExportOptions = {}): Promise<ExportManifest> {
  const progress = options.progress ?? (() => {})
  if (!ID_PATTERN.test(clientId) || !clientId.startsWith('cli_')) throw new ExportError(`"${clientId}" is not a client id (cli_ followed by 26 characters)`)
  const keyring = createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
  const rowCounts: Record<string, number> = {}
  let started = false
  const head = new PassThrough()
  const hash = createHash('sha256')
  let done: Promise<void> | undefined
  let handle: FileHandle | undefined
  const write = async (line: string) => {
    hash.update(line)
    if (!head.write(line)) await once(head, 'drain')
  }
  try {
    await db.transaction(async (tx) => {
      await tx.execute(sql`set transaction isolation level repeatable read, read only`)
      const [client] = await queryRows<{ client_number: string }>(tx, sql`select client_number from clients where id = ${clientId}`)
      if (!client) throw new ExportError(`client ${clientId} not found`)
      const present = await existingTables(tx)
      const specs = EXPORT_TABLES.filter((s) => present.has(s.table))
      const totals: Record<string, number> = {}
      for (const spec of specs) {
        const [row] = await queryRows<{ n: number }>(tx, sql`select count(*)::int as n from ${sql.identifier(spec.table)} t where ${spec.where(clientId)}`)
        totals[spec.table] = row?.n ?? 0
      }
      const total = Object.values(totals).reduce((a, b) => a + b, 0)
      const [keys] = await queryRows<{ n: number }>(tx, sql`select count(*)::int as n from api_keys where client_id = ${clientId}`)
      const [deliveries] = await queryRows<{ n: number }>(tx, sql`select count(*)::int as n from webhook_deliveries d join webhooks w on w.id = d.webhook_id where w.client_id = ${clientId}`)
      const counted: Record<string, number | undefined> = { api_keys: keys?.n, webhook_deliveries: deliveries?.n }
      const header: ExportHeader = {
        type: 'header',
        format: EXPORT_FORMAT,
        version: 1,
        createdAt: new Date().toISOString(),
        clientId,
        clientNumber: client.client_number,
        schemaVersion: await schemaVersion(tx),
        tables: specs.map((s) => s.table),
        notExported: Object.entries(NOT_EXPORTED).map(([what, reason]) => ({ what, ...(counted[what] !== undefined ? { count: counted[what] } : {}), reason }))
      }

      // Only now (the client exists) is the file created: mode 0600 even when it existed before.
      handle = await open(file, 'w', 0o600)
      started = true
      await handle.chmod(0o600)
      const output = handle.createWriteStream()
      done = options.passphrase !== undefined
        ? pipeline(head, await encryptingStream(options.passphrase), output)
        : pipeline(head, output)
      progress(`export: ${file} holds serial numbers in clear text${options.passphrase !== undefined ? ' (encrypted with the passphrase)' : ''}: keep it private (mode 0600) and delete it after the import`)
      await write(`${JSON.stringify(header)}\n`)

      let written = 0
      for (const spec of specs) {
        let count = 0
        await tx.execute(sql`declare export_rows no scroll cursor for
          select (to_jsonb(t)${dropSql(spec)})::text as r from ${sql.identifier(spec.table)} t
          where ${spec.where(clientId)} order by ${sql.raw(spec.order)}`)
        for (;;) {
          const rows = await queryRows<{ r: string }>(tx, sql.raw(`fetch ${FETCH} from export_rows`))
          for (const row of rows) {
            const r = spec.encrypted ? JSON.stringify(decryptRow(row.r, spec.encrypted, keyring)) : row.r
            await write(`{"t":${JSON.stringify(spec.table)},"r":${r}}\n`)
          }
          count += rows.length
          written += rows.length
          progress(`export: ${spec.table} ${count} rows`, { done: written, total, tick: true })
          if (rows.length < FETCH) break
        }
        await tx.execute(sql`close export_rows`)
        rowCounts[spec.table] = count
        progress(`export: ${spec.table} ${count} rows`, { done: written, total })
      }
    })
    const manifest: ExportManifest = { type: 'manifest', rowCounts, sha256: hash.digest('hex') }
    head.end(`${JSON.stringify(manifest)}\n`)
    await done
    return manifest
  } catch (error) {
    if (done) {
      head.destroy(error as Error)
      await done.catch(() => {})
    } else {
      head.destroy()
      await handle?.close().catch(() => {})
    }
    // A partial file still holds serial numbers in clear text.
    if (started) await unlink(file).catch(() => {})
    throw error
  }
}

function decryptRow (text: string, encrypted: Record<string, string>, keyring: IKeyring): Record<string, unknown> {
  const row = JSON.parse(text) as Record<string, unknown>
  for (const [column, field] of Object.entries(encrypted)) {
    const value = row[column]
    delete row[column]
    row[field] = typeof value === 'string' ? keyring.decrypt(value) : null
  }
  return row
}

export interface ImportOptions {
  progress?: Progress
  passphrase?: string
  /** Recorded as the actor of the appended audit entries. */
  actor?: Actor
}

export interface ImportResult {
  header: ExportHeader
  manifest: ExportManifest
  /** Policies the target already had (kept as they are there). */
  policiesKept: string[]
  auditEntries: number
}

const IMPORT_ACTOR: Actor = { kind: 'apiKey', id: 'system', role: 'ADMIN', clientId: null, keyId: null, expiresAt: null }

/**
 * Imports `file` into this (migrated) database in one transaction: nothing is kept unless the
 * header, the checksum and the row counts match and nothing of the client exists here already.
 */
export async function importClient (db: Db, config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious'>, file: string, options: ImportOptions = {}): Promise<ImportResult> {
  const progress = options.progress ?? (() => {})
  const actor = options.actor ?? IMPORT_ACTOR
  const meta = { ip: 'cli', requestId: 'import' }
  const keyring = createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
  const size = (await stat(file)).size
  const first = await readFirstBytes(file, ENCRYPTED_EXPORT_MAGIC.length)
  let start = 0
  let decrypt: Transform | undefined
  if (first.equals(ENCRYPTED_EXPORT_MAGIC)) {
    if (options.passphrase === undefined) throw new ExportError('the export is encrypted: pass --passphrase-env <VARIABLE> naming the variable that holds its passphrase')
    const encrypted = await readEncryptedHeader(file, options.passphrase)
    start = encrypted.headerLength
    decrypt = decryptingStream(encrypted.key, encrypted.iv)
  } else if (first[0] === 0x1f && first[1] === 0x8b) {
    throw new ExportError('not a Serials export (a gzip file: a backup? use restore)')
  }
  const input = createReadStream(file, { start })
  let read = start
  const counter = new Transform({ transform (chunk: Buffer, _encoding, callback) { read += chunk.length; callback(null, chunk) } })
  const text = new PassThrough()
  let piping: Promise<void> = Promise.resolve()
  let lines: ReturnType<typeof createInterface> | undefined
  const hash = createHash('sha256')
  let header: ExportHeader | undefined
  let manifest: ExportManifest | undefined
  const counts: Record<string, number> = {}
  const policiesKept: string[] = []
  let auditEntries = 0
  try {
    await db.transaction(async (tx) => {
      // Re-encrypted with this shell's secrets: they must be the ones the servers here use.
      await checkSecretFingerprints(tx, config)
      const columns = new Map<string, string[]>()
      const columnsOf = async (table: string) => {
        if (!columns.has(table)) {
          const rows = await queryRows<{ c: string }>(tx, sql`select column_name as c from information_schema.columns
            where table_schema = 'public' and table_name = ${table} order by ordinal_position`)
          columns.set(table, rows.map((r) => r.c))
        }
        return columns.get(table)!
      }
      let batch: Array<Record<string, unknown> | string> = []
      let batchTable = ''
      const flush = async () => {
        if (batch.length === 0) return
        const spec = EXPORT_TABLES.find((s) => s.table === batchTable)!
        const rows = batch
        batch = []
        counts[spec.table] = (counts[spec.table] ?? 0) + rows.length
        progress(`import: ${spec.table} ${counts[spec.table]} rows`, { done: read, total: size, tick: true })
        if (spec.table === 'audit_log') { await appendImportedAudit(tx, actor, meta, rows as Array<Record<string, unknown>>); auditEntries += rows.length; return }
        const json = `[${rows.map((r) => typeof r === 'string' ? r : JSON.stringify(r)).join(',')}]`
        if (spec.table === 'serials') await refuseExistingSerials(tx, json)
        const cols = (await columnsOf(spec.table)).filter((c) => !spec.drop?.includes(c) || spec.derived?.includes(c))
        const list = sql.raw(cols.map((c) => `"${c}"`).join(', '))
        const table = sql.identifier(spec.table)
        if (spec.shared) {
          const inserted = await queryRows<{ id: string }>(tx, sql`insert into ${table} (${list}) select ${list} from jsonb_populate_recordset(null::${table}, ${json}::text::jsonb) on conflict (id) do nothing returning id`)
          const added = new Set(inserted.map((r) => r.id))
          for (const r of rows as Array<Record<string, unknown>>) if (!added.has(String(r.id))) policiesKept.push(String(r.id))
          return
        }
        await tx.execute(sql`insert into ${table} (${list}) select ${list} from jsonb_populate_recordset(null::${table}, ${json}::text::jsonb)`)
      }

      piping = (decrypt ? pipeline(input, counter, decrypt, text) : pipeline(input, counter, text))
        .catch((error: unknown) => { text.destroy(error as Error) })
      lines = createInterface({ input: text, crlfDelay: Infinity })
      for await (const line of lines) {
        if (manifest) throw new ExportError('data after the manifest: the file is damaged')
        if (!header) {
          hash.update(`${line}\n`)
          header = parseHeader(line)
          const here = await schemaVersion(tx)
          if (header.schemaVersion !== here) throw new ExportError(`the export's schema version ${header.schemaVersion} differs from this database's ${here}: import with the same release as the source`)
          const unknown = header.tables.filter((t) => !EXPORT_TABLES.some((s) => s.table === t))
          if (unknown.length > 0) throw new ExportError(`the export holds rows of unknown tables ${unknown.join(', ')}`)
          const [taken] = await queryRows<{ id: string, client_number: string }>(tx, sql`select id, client_number from clients
            where id = ${header.clientId} or client_number = ${header.clientNumber} limit 1`)
          if (taken) throw new ExportError(`client ${header.clientNumber} (${header.clientId}) already exists here as ${taken.client_number} (${taken.id}): nothing imported`)
          progress(`import: client ${header.clientNumber} (${header.clientId}) exported ${header.createdAt}`)
          continue
        }
        if (line.startsWith('{"type":"manifest"')) {
          manifest = JSON.parse(line) as ExportManifest
          continue
        }
        hash.update(`${line}\n`)
        const row = ROW.exec(line)
        if (!row || !line.endsWith('}')) throw new ExportError('a line of the export is not a row: the file is damaged')
        const t = JSON.parse(row[1]!) as string
        const spec = EXPORT_TABLES.find((s) => s.table === t)
        if (!spec || !header.tables.includes(t)) throw new ExportError(`the export holds rows of an unknown table ${t}`)
        if (t !== batchTable) {
          await flush()
          if (batchTable) progress(`import: ${batchTable} ${counts[batchTable] ?? 0} rows`, { done: read, total: size })
          batchTable = t
        }
        const r = line.slice(row[0].length, -1)
        batch.push(needsParsing(spec) ? encryptRow(JSON.parse(r) as Record<string, unknown>, spec, keyring, config.pepper) : r)
        if (batch.length >= INSERT_BATCH) await flush()
      }
      await flush()
      if (batchTable) progress(`import: ${batchTable} ${counts[batchTable] ?? 0} rows`, { done: read, total: size })
      await piping
      if (!header) throw new ExportError('not a Serials export (empty file)')
      if (!manifest) throw new ExportError('the export has no manifest: the file is truncated')
      if (hash.digest('hex') !== manifest.sha256) throw new ExportError('the export\'s checksum does not match: the file is damaged; nothing imported')
      for (const table of header.tables) {
        if ((counts[table] ?? 0) !== (manifest.rowCounts[table] ?? 0)) throw new ExportError(`${table}: ${counts[table] ?? 0} rows read, the manifest says ${manifest.rowCounts[table] ?? 0}`)
      }
      if (!counts.clients) throw new ExportError('the export holds no client row: the file is damaged')
      await appendAudit(tx, actor, meta, [{
        action: 'client.imported',
        targetType: 'client',
        targetId: header.clientId,
        clientId: header.clientId,
        changes: { clientNumber: header.clientNumber, exportedAt: header.createdAt, sha256: manifest.sha256, rowCounts: manifest.rowCounts, policiesKept }
      }])
      progress(`import: ${Object.values(counts).reduce((a, b) => a + b, 0)} rows, checksum verified`, { done: size, total: size })
    })
  } finally {
    lines?.close()
    input.destroy()
  }
  return { header: header!, manifest: manifest!, policiesKept, auditEntries }
}

function parseHeader (line: string): ExportHeader {
  let header: ExportHeader
  try { header = JSON.parse(line) as ExportHeader } catch { throw new ExportError('not a Serials export (no header)') }
  if (header?.type !== 'header') throw new ExportError('not a Serials export (no header)')
  if (header.format !== EXPORT_FORMAT) throw new ExportError(`not a Serials export (format ${String(header.format)}${header.format === 'serials-backup' ? ': use restore' : ''})`)
  if (header.version !== 1) throw new ExportError(`export format version ${header.version} is not supported`)
  if (typeof header.clientId !== 'string' || typeof header.clientNumber !== 'string' || !Array.isArray(header.tables)) throw new ExportError('the export header is incomplete: the file is damaged')
  return header
}

function needsParsing (spec: TableSpec): boolean {
  return spec.encrypted !== undefined || spec.shared === true || spec.table === 'audit_log'
}

function encryptRow (row: Record<string, unknown>, spec: TableSpec, keyring: IKeyring, pepper: Buffer): Record<string, unknown> {
  for (const [column, field] of Object.entries(spec.encrypted ?? {})) {
    const value = row[field]
    delete row[field]
    if (spec.table === 'serials') {
      const number = typeof value === 'string' ? normaliseSerialNumber(value) : undefined
      if (!number) throw new ExportError(`serial ${String(row.id)} has no valid serial number in the export: the file is damaged`)
      row.number_hash = lookupHash(pepper, number)
      row[column] = keyring.encrypt(number)
      continue
    }
    row[column] = typeof value === 'string' ? keyring.encrypt(value) : null
  }
  return row
}

async function refuseExistingSerials (tx: Executor, json: string): Promise<void> {
  // Two joins, each on a unique index (an OR would scan the table).
  const [taken] = await queryRows<{ id: string, tail: string, imported: string }>(tx, sql`with r as (
      select * from jsonb_to_recordset(${json}::text::jsonb) as r(id text, number_hash text))
    (select s.id, s.number_tail as tail, r.id as imported from r join serials s on s.id = r.id limit 1)
    union all
    (select s.id, s.number_tail as tail, r.id as imported from r join serials s on s.number_hash = r.number_hash limit 1)
    limit 1`)
  if (taken) throw new ExportError(`serial ${taken.imported} already exists here (as ${taken.id}, number ending ${taken.tail}): nothing imported`)
}

/** The source's entries become new entries of this chain; who did what, and when, stays in `importedFrom`. */
async function appendImportedAudit (tx: Executor, actor: Actor, meta: { ip: string, requestId: string }, rows: Array<Record<string, unknown>>): Promise<void> {
  const entries: AuditInput[] = rows.map((r) => {
    const changes = (r.changes ?? {}) as Record<string, unknown>
    // A client moved twice keeps the whole trail: the earlier origin nests inside the new one.
    const earlier = changes.importedFrom === undefined ? {} : { importedFrom: changes.importedFrom }
    return {
      action: String(r.action),
      targetType: String(r.target_type),
      targetId: String(r.target_id),
      clientId: (r.client_id as string | null) ?? null,
      changes: { ...changes, importedFrom: { id: r.id, actorId: r.actor_id, actorRole: r.actor_role, createdAt: r.created_at, ip: r.ip ?? null, requestId: r.request_id ?? null, ...earlier } }
    }
  })
  await appendAudit(tx, actor, meta, entries)
}

async function readFirstBytes (file: string, length: number): Promise<Buffer> {
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(length)
    const { bytesRead } = await handle.read(buffer, 0, length, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}
