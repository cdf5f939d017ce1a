// `export` / `import`: one client's data moved between deployments as NDJSON.
//
// The target deployment has its own ENCRYPTION_KEY and ENCRYPTION_PEPPER, so encrypted and hashed
// columns cannot travel as stored: the export decrypts them (serial numbers, the contact e-mail,
// device info, webhook secrets) and the import re-encrypts and re-hashes them with the target's
// secrets. The file therefore holds serial numbers in clear text: it is written with mode 0600,
// and `passphrase` encrypts it whole (see export-crypto.ts). API keys are stored as hashes keyed by
// the pepper and cannot be re-created: they are left out (listed in the header's `notExported`).
//
// The import trusts nothing in the file it has not checked. The file is signed: an HMAC-SHA256 over
// every line before the manifest, keyed (scrypt, the header's salt) by a signing key the operators
// share (`--key-env`) or by the export passphrase; a checksum anyone can recompute proves nothing.
// The import reads the file twice: first without a database (bounds, signature, every row against
// import-rules.ts), and only when all of that holds, again inside one transaction that writes, checks
// what needs the database, recomputes the counters and keeps nothing unless the file read the same.
//
// File layout, one JSON object per line:
//   {"type":"header","format":"serials-export","version":2,"createdAt","clientId","clientNumber","schemaVersion","tables":[…],"notExported":[…],
//    "signature":{"alg":"HMAC-SHA256","kdf":"scrypt","salt":"<base64>","keyFrom":"key"|"passphrase"}}
//   {"t":"<table>","r":{…row…}}                      (tables in the order of EXPORT_TABLES)
//   {"type":"manifest","rowCounts":{…},"sha256":"…","mac":"…"}  (both over every line above, newlines included)
import { createHash, createHmac, randomBytes, timingSafeEqual, type Hmac } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { PassThrough, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { sql, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import { appendAudit, type AuditInput } from '../audit/audit-log.ts'
import type { Config } from '../../config/config.ts'
import type { Actor } from '../../kernel/access.ts'
import { createKeyring, lookupHash, type IKeyring } from '../../infra/crypto.ts'
import { pgErrorCode, queryRows, type Db, type Executor } from '../../infra/database.ts'
import { ID_PATTERN } from '../../kernel/ids.ts'
import { jsonTooDeep } from '../../kernel/input.ts'
import { refuseWebhookUrl, type Resolver } from '../webhooks/webhook-url.ts'
import { schemaVersion } from './backup.ts'
import { boundedLines, formatBytes, GiB, MiB } from './bounded-lines.ts'
import { decryptingStream, deriveMacKey, encryptingStream, ENCRYPTED_EXPORT_MAGIC, MAC_SALT_BYTES, readEncryptedHeader } from './export-crypto.ts'
import { MAX_AUDIT_DEPTH, rowProblem, rowRules, type ImportScope } from './import-rules.ts'
import { createOutputFile, refuseOutputPath, type OutputFile } from './output-file.ts'
import type { Progress } from './progress.ts'
import { checkSecretFingerprints } from './secret-fingerprints.ts'

export const EXPORT_FORMAT = 'serials-export'
/** 2: signed (header `signature`, manifest `mac`). Version 1 files carry no signature and are refused. */
export const EXPORT_VERSION = 2
/** Longest line an import reads: a row holds at most a few KiB (4 KiB of metadata, 64 KiB of audit changes). */
export const MAX_LINE_BYTES = MiB
/** Default bound on an export's text (`import --max-bytes`): about 800,000 serials with a device and a usage event each. */
export const DEFAULT_IMPORT_MAX_BYTES = GiB
const FETCH = 1000
const INSERT_BATCH = 500
const ROW = /^\{"t":("(?:[^"\\]|\\.)*"),"r":/
/** Row nesting allowed in a line: the row and its wrapper, around audit changes (the deepest field). */
const MAX_LINE_DEPTH = MAX_AUDIT_DEPTH + 3

export interface ExportSignature { alg: 'HMAC-SHA256', kdf: 'scrypt', salt: string, keyFrom: 'key' | 'passphrase' }

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
  signature: ExportSignature
}

export interface ExportManifest { type: 'manifest', rowCounts: Record<string, number>, sha256: string, mac: string }

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
const TABLE_NAMES = EXPORT_TABLES.map((s) => s.table) as [string, ...string[]]
/** Tables whose rows carry their own id (a primary key): one the target already has is refused. */
const WITH_ID = new Set(['clients', 'serials', 'devices', 'usage_events', 'webhooks'])
/** Tables whose rows name a serial: it must be one of the file's. */
const WITH_SERIAL = new Set(['devices', 'device_activations', 'usage_events', 'validation_stats', 'usage_daily', 'usage_device_days'])

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
  /** Encrypts the whole file (AES-256-GCM, key from scrypt); signs it too unless `signingKey` is given. */
  passphrase?: string
  /** Signs the file (the import needs the same key); without it the passphrase signs. */
  signingKey?: string
  /** Replaces an existing regular file at `file` (never a symbolic link). */
  force?: boolean
}

/** The secret that signs (or verifies) a file, and where it came from. */
function signingSecret (options: { signingKey?: string, passphrase?: string }): { secret: string, keyFrom: ExportSignature['keyFrom'] } | undefined {
  if (options.signingKey !== undefined && options.signingKey !== '') return { secret: options.signingKey, keyFrom: 'key' }
  if (options.passphrase !== undefined && options.passphrase !== '') return { secret: options.passphrase, keyFrom: 'passphrase' }
  return undefined
}

/** Writes one client's data to `file` (mode 0600, signed); returns the manifest. */
export async function exportClient (db: Db, config: Pick<Config, 'encryptionKey' | 'encryptionKeysPrevious'>, clientId: string, file: string, options: ExportOptions = {}): Promise<ExportManifest> {
  const progress = options.progress ?? (() => {})
  if (!ID_PATTERN.test(clientId) || !clientId.startsWith('cli_')) throw new ExportError(`"${clientId}" is not a client id (cli_ followed by 26 characters)`)
  const signer = signingSecret(options)
  if (!signer) throw new ExportError('an export is signed: pass --key-env <VARIABLE> naming the variable that holds the signing key (or --passphrase-env); the import needs the same')
  // Refused before any work; createOutputFile checks again, race-free.
  const refusal = await refuseOutputPath(file, options.force === true)
  if (refusal) throw new ExportError(refusal)
  const salt = randomBytes(MAC_SALT_BYTES)
  const mac = createHmac('sha256', await deriveMacKey(signer.secret, salt))
  const keyring = createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
  const rowCounts: Record<string, number> = {}
  const head = new PassThrough()
  const hash = createHash('sha256')
  let done: Promise<void> | undefined
  let output: OutputFile | undefined
  const write = async (line: string) => {
    hash.update(line)
    mac.update(line)
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
        version: EXPORT_VERSION,
        createdAt: new Date().toISOString(),
        clientId,
        clientNumber: client.client_number,
        schemaVersion: await schemaVersion(tx),
        tables: specs.map((s) => s.table),
        notExported: Object.entries(NOT_EXPORTED).map(([what, reason]) => ({ what, ...(counted[what] !== undefined ? { count: counted[what] } : {}), reason })),
        signature: { alg: 'HMAC-SHA256', kdf: 'scrypt', salt: salt.toString('base64'), keyFrom: signer.keyFrom }
      }

      // Only now (the client exists) is the file created: never through a link, mode 0600.
      output = await createOutputFile(file, { force: options.force, error: (message) => new ExportError(message) })
      done = options.passphrase !== undefined
        ? pipeline(head, await encryptingStream(options.passphrase), output.stream())
        : pipeline(head, output.stream())
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
    const manifest: ExportManifest = { type: 'manifest', rowCounts, sha256: hash.digest('hex'), mac: mac.digest('hex') }
    head.end(`${JSON.stringify(manifest)}\n`)
    await done
    await output!.commit()
    return manifest
  } catch (error) {
    head.destroy(done ? error as Error : undefined)
    await done?.catch(() => {})
    // A partial file still holds serial numbers in clear text; a file that was there stays.
    await output?.abort()
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
  /** The key the file was signed with (`export --key-env`); a file signed with the passphrase needs the passphrase. */
  signingKey?: string
  /** Recorded as the actor of the appended audit entries. */
  actor?: Actor
  /** Most bytes of text the file may hold (default DEFAULT_IMPORT_MAX_BYTES). */
  maxBytes?: number
  /** DNS look-up of webhook hosts (default: the system's), replaceable for tests. */
  resolveHost?: Resolver
}

export interface ImportResult {
  header: ExportHeader
  manifest: ExportManifest
  /** Policies the target already had (kept as they are there). */
  policiesKept: string[]
  auditEntries: number
}

const IMPORT_ACTOR: Actor = { kind: 'apiKey', id: 'system', role: 'ADMIN', clientId: null, keyId: null, expiresAt: null }

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const headerSchema = z.object({
  type: z.literal('header'),
  format: z.literal(EXPORT_FORMAT),
  version: z.literal(EXPORT_VERSION),
  createdAt: z.iso.datetime(),
  clientId: z.string().regex(/^cli_[0-9A-Z]{26}$/),
  clientNumber: z.string().regex(/^[A-Z0-9-]{1,32}$/),
  schemaVersion: z.string().max(256).nullable(),
  tables: z.array(z.enum(TABLE_NAMES)).max(TABLE_NAMES.length).refine((t) => new Set(t).size === t.length, 'lists a table twice'),
  notExported: z.array(z.object({ what: z.string().max(64), count: z.number().int().min(0).optional(), reason: z.string().max(500) })).max(32),
  signature: z.strictObject({
    alg: z.literal('HMAC-SHA256'),
    kdf: z.literal('scrypt'),
    salt: z.base64().refine((s) => Buffer.from(s, 'base64').length === MAC_SALT_BYTES, `must be ${MAC_SALT_BYTES} bytes`),
    keyFrom: z.enum(['key', 'passphrase'])
  })
})
const manifestSchema = z.strictObject({
  type: z.literal('manifest'),
  rowCounts: z.partialRecord(z.enum(TABLE_NAMES), z.number().int().min(0)),
  sha256: hex64,
  mac: hex64
})

function problemOf (error: z.ZodError): string {
  const issue = error.issues[0]!
  return `${issue.path.join('.') || 'it'}: ${issue.message.replace(/^Invalid input: /, '')}`
}

function parseHeader (line: string): ExportHeader {
  let raw: Record<string, unknown>
  try { raw = JSON.parse(line) as Record<string, unknown> } catch { throw new ExportError('not a Serials export (no header)') }
  if (raw === null || typeof raw !== 'object' || raw.type !== 'header') throw new ExportError('not a Serials export (no header)')
  if (raw.format !== EXPORT_FORMAT) throw new ExportError(`not a Serials export (format ${String(raw.format)}${raw.format === 'serials-backup' ? ': use restore' : ''})`)
  if (raw.version === 1) throw new ExportError('export format version 1 is not supported: it is not signed (made by an earlier release); export again with this release')
  if (raw.version !== EXPORT_VERSION) throw new ExportError(`export format version ${String(raw.version)} is not supported`)
  if (raw.signature === undefined) throw new ExportError('the export is not signed: refused (nothing proves where it comes from)')
  const parsed = headerSchema.safeParse(raw)
  if (!parsed.success) throw new ExportError(`the export header is not valid (${problemOf(parsed.error)}): the file is damaged`)
  return parsed.data as ExportHeader
}

function parseManifest (line: string): ExportManifest {
  let raw: unknown
  try { raw = JSON.parse(line) } catch { throw new ExportError('the export\'s manifest is not JSON: the file is damaged') }
  if ((raw as { mac?: unknown } | null)?.mac === undefined) throw new ExportError('the export\'s manifest has no MAC: refused (nothing proves where it comes from)')
  const parsed = manifestSchema.safeParse(raw)
  if (!parsed.success) throw new ExportError(`the export's manifest is not valid (${problemOf(parsed.error)}): the file is damaged`)
  return parsed.data as ExportManifest
}

/** Where an export's text comes from: a regular file, perhaps encrypted. */
interface ExportSource {
  file: string
  size: number
  maxBytes: number
  encryption?: { key: Buffer, iv: Buffer, headerLength: number }
}

async function openSource (file: string, options: { passphrase?: string, maxBytes?: number }): Promise<ExportSource> {
  const maxBytes = options.maxBytes ?? DEFAULT_IMPORT_MAX_BYTES
  const stats = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? new ExportError(`${file} does not exist`) : error
  })
  // Read twice (the signature before anything is written): a pipe or a device cannot be.
  if (!stats.isFile()) throw new ExportError(`${file} is not a regular file: an import reads its file twice (the signature is checked before anything is written)`)
  // The encrypted format adds 68 bytes around the text.
  if (stats.size > maxBytes + 68) throw new ExportError(`${file} is larger than ${formatBytes(maxBytes)} (the limit; see --max-bytes)`)
  const first = await readFirstBytes(file, ENCRYPTED_EXPORT_MAGIC.length)
  if (first.equals(ENCRYPTED_EXPORT_MAGIC)) {
    if (options.passphrase === undefined) throw new ExportError('the export is encrypted: pass --passphrase-env <VARIABLE> naming the variable that holds its passphrase')
    return { file, size: stats.size, maxBytes, encryption: await readEncryptedHeader(file, options.passphrase) }
  }
  if (first[0] === 0x1f && first[1] === 0x8b) throw new ExportError('not a Serials export (a gzip file: a backup? use restore)')
  return { file, size: stats.size, maxBytes }
}

/** The file's lines, bounded; `read()` counts the file's bytes read so far (for progress). */
function readLines (source: ExportSource): { lines: AsyncGenerator<string>, read: () => number, close: () => void } {
  const start = source.encryption?.headerLength ?? 0
  const input = createReadStream(source.file, { start })
  let read = start
  const counter = new Transform({ transform (chunk: Buffer, _encoding, callback) { read += chunk.length; callback(null, chunk) } })
  const text = new PassThrough()
  const piping = source.encryption
    ? pipeline(input, counter, decryptingStream(source.encryption.key, source.encryption.iv), text)
    : pipeline(input, counter, text)
  piping.catch((error: unknown) => { text.destroy(error as Error) })
  const lines = boundedLines(text, { maxLineBytes: MAX_LINE_BYTES, maxBytes: source.maxBytes, error: (message) => new ExportError(message) })
  return { lines, read: () => read, close: () => { input.destroy(); text.destroy() } }
}

interface CheckedRow { spec: TableSpec, row: Record<string, unknown> }

/** A refused row: the first pass reads on past it (to tell a forged file from a damaged one). */
class RowProblem extends ExportError {}

/**
 * The checks of one pass over an export, line by line: framing, signature, the rows' rules and the
 * rules between rows that need no database (order of tables, one client row first, policies used).
 */
class ExportReader {
  header?: ExportHeader
  manifest?: ExportManifest
  macKey?: Buffer
  readonly counts: Record<string, number> = {}
  private readonly hash = createHash('sha256')
  private mac?: Hmac
  private rules?: ReturnType<typeof rowRules>
  private tableIndex = -1
  private lineNumber = 0
  private readonly policies = new Set<string>()
  private readonly policiesUsed = new Set<string>()

  constructor (private readonly secrets: { signingKey?: string, passphrase?: string }, macKey?: Buffer) {
    this.macKey = macKey
  }

  /**
   * Takes the next line: the header, a row (returned when `check`) or the manifest. Hashing comes
   * first, so that after a refused row the caller can still read on to learn whether the file is
   * genuine at all (`check` false).
   */
  async line (text: string, check = true): Promise<CheckedRow | undefined> {
    this.lineNumber++
    if (this.manifest) throw new ExportError('data after the manifest: the file is damaged')
    if (!this.header) {
      const header = parseHeader(text)
      if (!this.macKey) {
        const signer = signingSecret(header.signature.keyFrom === 'key' ? { signingKey: this.secrets.signingKey } : { passphrase: this.secrets.passphrase })
        if (!signer) {
          throw new ExportError(header.signature.keyFrom === 'key'
            ? 'the export is signed with a key: pass --key-env <VARIABLE> naming the variable that holds it'
            : 'the export is signed with its passphrase: pass --passphrase-env <VARIABLE> naming the variable that holds it')
        }
        this.macKey = await deriveMacKey(signer.secret, Buffer.from(header.signature.salt, 'base64'))
      }
      this.header = header
      this.mac = createHmac('sha256', this.macKey)
      this.rules = rowRules({ clientId: header.clientId, clientNumber: header.clientNumber } satisfies ImportScope)
      this.update(text)
      return undefined
    }
    if (text.startsWith('{"type":"manifest"')) {
      this.manifest = parseManifest(text)
      return undefined
    }
    this.update(text)
    if (!check) return undefined
    try {
      return this.row(text)
    } catch (error) {
      throw error instanceof ExportError ? new RowProblem(error.message) : error
    }
  }

  private update (text: string): void {
    this.hash.update(`${text}\n`)
    this.mac!.update(`${text}\n`)
  }

  private row (text: string): CheckedRow {
    const header = this.header!
    const frame = ROW.exec(text)
    if (!frame || !text.endsWith('}')) throw new ExportError(`line ${this.lineNumber} of the export is not a row: the file is damaged`)
    let table: unknown
    try { table = JSON.parse(frame[1]!) } catch { table = undefined }
    const index = EXPORT_TABLES.findIndex((s) => s.table === table)
    const spec = EXPORT_TABLES[index]
    if (!spec || !header.tables.includes(spec.table)) throw new ExportError(`line ${this.lineNumber}: the export holds rows of an unknown table ${JSON.stringify(table).slice(0, 64)}`)
    if (index < this.tableIndex) throw new ExportError(`line ${this.lineNumber}: rows of ${spec.table} after rows of ${EXPORT_TABLES[this.tableIndex]!.table}: the file is damaged`)
    if (index > 0 && (this.counts.clients ?? 0) === 0) throw new ExportError(`line ${this.lineNumber}: rows of ${spec.table} before the client's row: the file is damaged`)
    this.tableIndex = index
    if (jsonTooDeep(text, MAX_LINE_DEPTH)) throw new ExportError(`line ${this.lineNumber} (${spec.table}): nests deeper than any row the service stores`)
    let row: unknown
    try { row = JSON.parse(text.slice(frame[0].length, -1)) } catch { throw new ExportError(`line ${this.lineNumber} (${spec.table}): not JSON: the file is damaged`) }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new ExportError(`line ${this.lineNumber} (${spec.table}): not a row: the file is damaged`)
    const r = row as Record<string, unknown>
    const name = `line ${this.lineNumber} (${spec.table}${typeof r.id === 'string' && ID_PATTERN.test(r.id) ? ` ${r.id}` : ''})`
    const problem = rowProblem(this.rules![spec.table]!, r)
    if (problem) throw new ExportError(`${name}: ${problem}: nothing imported`)
    this.counts[spec.table] = (this.counts[spec.table] ?? 0) + 1
    if (spec.table === 'clients' && this.counts.clients! > 1) throw new ExportError(`${name}: a second client row: an export holds one client`)
    if (spec.table === 'policies') this.policies.add(r.id as string)
    if (spec.table === 'serials' && r.policy_id !== null) {
      if (!this.policies.has(r.policy_id as string)) throw new ExportError(`${name}: uses policy ${String(r.policy_id)}, which the file does not hold: nothing imported`)
      this.policiesUsed.add(r.policy_id as string)
    }
    return { spec, row: r }
  }

  /** The file's own sums, as read. */
  digest (): { sha256: string, mac: string } {
    return { sha256: this.hash.digest('hex'), mac: this.mac!.digest('hex') }
  }

  /** After the last line: the signature first (a forged file is named as such), then the rest. */
  finish (firstProblem?: Error): { header: ExportHeader, manifest: ExportManifest, sha256: string, mac: string } {
    if (!this.header) throw new ExportError('not a Serials export (empty file)')
    if (!this.manifest) throw new ExportError('the export has no manifest: the file is truncated')
    const { sha256, mac } = this.digest()
    if (!timingSafeEqual(Buffer.from(mac, 'hex'), Buffer.from(this.manifest.mac, 'hex'))) {
      throw new ExportError(`the export's signature does not verify: it was not made with this ${this.header.signature.keyFrom === 'key' ? 'signing key' : 'passphrase'}, or it was changed since; nothing imported`)
    }
    if (sha256 !== this.manifest.sha256) throw new ExportError('the export\'s checksum does not match: the file is damaged; nothing imported')
    if (firstProblem) throw firstProblem
    for (const table of this.header.tables) {
      if ((this.counts[table] ?? 0) !== (this.manifest.rowCounts[table] ?? 0)) throw new ExportError(`${table}: ${this.counts[table] ?? 0} rows read, the manifest says ${this.manifest.rowCounts[table] ?? 0}`)
    }
    if (this.counts.clients !== 1) throw new ExportError('the export holds no client row: the file is damaged')
    const unused = [...this.policies].find((p) => !this.policiesUsed.has(p))
    if (unused) throw new ExportError(`policy ${unused} is in the file but no serial of the file uses it: nothing imported`)
    return { header: this.header, manifest: this.manifest, sha256, mac }
  }
}

export interface VerifiedExport {
  header: ExportHeader
  manifest: ExportManifest
  sha256: string
  mac: string
  /** The signature's key, derived (the second pass reuses it). */
  macKey: Buffer
  source: ExportSource
}

/**
 * Reads the whole file without a database: bounds, signature (HMAC) and every row's rules. Throws
 * ExportError (or PassphraseError) naming the first problem; a file whose signature does not
 * verify is named as such whatever else is wrong in it.
 */
export async function verifyExport (file: string, options: { passphrase?: string, signingKey?: string, maxBytes?: number, progress?: Progress } = {}): Promise<VerifiedExport> {
  const progress = options.progress ?? (() => {})
  const source = await openSource(file, options)
  progress(`import: checking the signature and every row of ${file}`)
  const reader = new ExportReader(options)
  const { lines, read, close } = readLines(source)
  let problem: Error | undefined
  let n = 0
  try {
    for await (const line of lines) {
      try {
        await reader.line(line, problem === undefined)
      } catch (error) {
        // The header and the manifest cannot be read past; a refused row can.
        if (!(error instanceof RowProblem)) throw error
        problem ??= error
      }
      if (++n % 10_000 === 0) progress(`import: checking ${file}`, { done: read(), total: source.size, tick: true })
    }
  } finally {
    close()
  }
  const verified = reader.finish(problem)
  return { ...verified, macKey: reader.macKey!, source }
}

/**
 * Imports `file` into this (migrated) database. First the whole file is checked without a
 * database (verifyExport); then, in one transaction, it is read again and written, and nothing is
 * kept unless every check that needs the database holds and the file read the same both times.
 */
export async function importClient (db: Db, config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious' | 'webhookAllowPrivate'>, file: string, options: ImportOptions = {}): Promise<ImportResult> {
  const progress = options.progress ?? (() => {})
  const actor = options.actor ?? IMPORT_ACTOR
  const meta = { ip: 'cli', requestId: 'import' }
  const keyring = createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
  const verified = await verifyExport(file, { ...options, progress })
  const { header, manifest, source } = verified
  const keyName = header.signature.keyFrom === 'key' ? '--key-env' : 'the passphrase'
  progress(`import: signature verified (HMAC-SHA256, keyed by ${keyName}), ${Object.values(manifest.rowCounts).reduce((a, b) => a + b, 0)} rows checked`)
  const policiesKept: string[] = []
  let auditEntries = 0
  const reader = new ExportReader(options, verified.macKey)
  const { lines, read, close } = readLines(source)
  const clientId = header.clientId
  try {
    await db.transaction(async (tx) => {
      // Re-encrypted with this shell's secrets: they must be the ones the servers here use.
      await checkSecretFingerprints(tx, config)
      const here = await schemaVersion(tx)
      if (header.schemaVersion !== here) throw new ExportError(`the export's schema version ${header.schemaVersion} differs from this database's ${here}: import with the same release as the source`)
      const [taken] = await queryRows<{ id: string, client_number: string }>(tx, sql`select id, client_number from clients
        where id = ${clientId} or client_number = ${header.clientNumber} limit 1`)
      if (taken) throw new ExportError(`client ${header.clientNumber} (${clientId}) already exists here as ${taken.client_number} (${taken.id}): nothing imported`)
      progress(`import: client ${header.clientNumber} (${clientId}) exported ${header.createdAt}`)
      const columns = new Map<string, string[]>()
      const columnsOf = async (table: string) => {
        if (!columns.has(table)) {
          const rows = await queryRows<{ c: string }>(tx, sql`select column_name as c from information_schema.columns
            where table_schema = 'public' and table_name = ${table} order by ordinal_position`)
          columns.set(table, rows.map((r) => r.c))
        }
        return columns.get(table)!
      }
      let batch: Array<Record<string, unknown>> = []
      let batchTable = ''
      const flush = async () => {
        if (batch.length === 0) return
        const spec = EXPORT_TABLES.find((s) => s.table === batchTable)!
        const rows = batch
        batch = []
        progress(`import: ${spec.table} ${reader.counts[spec.table] ?? 0} rows`, { done: read(), total: source.size, tick: true })
        if (spec.table === 'audit_log') {
          await appendImportedAudit(tx, actor, meta, rows, verified.sha256)
          auditEntries += rows.length
          return
        }
        if (spec.table === 'webhooks') {
          for (const r of rows) {
            // The API's check, with this deployment's setting and resolver.
            const refusal = await refuseWebhookUrl(String(r.url), config.webhookAllowPrivate, options.resolveHost)
            if (refusal) throw new ExportError(`webhook ${String(r.id)}: url ${refusal}: nothing imported`)
          }
        }
        for (const r of rows) encryptRow(r, spec, keyring, config.pepper)
        const json = JSON.stringify(rows)
        if (spec.table === 'serials') await refuseExistingSerials(tx, json)
        else if (WITH_ID.has(spec.table)) await refuseExistingIds(tx, spec.table, json)
        if (WITH_SERIAL.has(spec.table)) await refuseForeignSerials(tx, spec.table, clientId, json)
        if (spec.table === 'device_activations') await refuseUnknownDevices(tx, json)
        const cols = (await columnsOf(spec.table)).filter((c) => !spec.drop?.includes(c) || spec.derived?.includes(c))
        const list = sql.raw(cols.map((c) => `"${c}"`).join(', '))
        const table = sql.identifier(spec.table)
        try {
          if (spec.shared) {
            const inserted = await queryRows<{ id: string }>(tx, sql`insert into ${table} (${list}) select ${list} from jsonb_populate_recordset(null::${table}, ${json}::text::jsonb) on conflict (id) do nothing returning id`)
            const added = new Set(inserted.map((r) => r.id))
            for (const r of rows) if (!added.has(String(r.id))) policiesKept.push(String(r.id))
            return
          }
          await tx.execute(sql`insert into ${table} (${list}) select ${list} from jsonb_populate_recordset(null::${table}, ${json}::text::jsonb)`)
        } catch (error) {
          throw refusedByDatabase(spec.table, error)
        }
      }

      for await (const line of lines) {
        const checked = await reader.line(line)
        if (!checked) continue
        if (checked.spec.table !== batchTable) {
          await flush()
          if (batchTable) progress(`import: ${batchTable} ${reader.counts[batchTable] ?? 0} rows`, { done: read(), total: source.size })
          batchTable = checked.spec.table
        }
        batch.push(checked.row)
        if (batch.length >= INSERT_BATCH) await flush()
      }
      await flush()
      if (batchTable) progress(`import: ${batchTable} ${reader.counts[batchTable] ?? 0} rows`, { done: read(), total: source.size })
      const second = reader.finish()
      if (second.sha256 !== verified.sha256 || second.mac !== verified.mac) throw new ExportError(`${file} changed while it was imported: nothing imported`)

      const recomputed = await recomputeCounters(tx, clientId)
      await appendAudit(tx, actor, meta, [{
        action: 'client.imported',
        targetType: 'client',
        targetId: clientId,
        clientId,
        changes: { clientNumber: header.clientNumber, exportedAt: header.createdAt, sha256: manifest.sha256, mac: manifest.mac, signedWith: header.signature.keyFrom, rowCounts: manifest.rowCounts, policiesKept, auditEntriesImported: auditEntries, activeDevicesRecomputed: recomputed }
      }])
      progress(`import: ${Object.values(reader.counts).reduce((a, b) => a + b, 0)} rows, signature verified, counters recomputed`, { done: source.size, total: source.size })
    })
  } finally {
    close()
  }
  return { header, manifest, policiesKept, auditEntries }
}

/** A database refusal (a constraint) as one line, without the values the driver's detail would name. */
function refusedByDatabase (table: string, error: unknown): Error {
  if (!pgErrorCode(error)) return error as Error
  const cause = ((error as Error).cause as Error | undefined) ?? error as Error
  return new ExportError(`${table}: the database refused the rows (${cause.message.split('\n')[0]}): nothing imported`)
}

function encryptRow (row: Record<string, unknown>, spec: TableSpec, keyring: IKeyring, pepper: Buffer): void {
  for (const [column, field] of Object.entries(spec.encrypted ?? {})) {
    const value = row[field]
    delete row[field]
    if (spec.table === 'serials') {
      // Checked by the row rules: the normalised number.
      row.number_hash = lookupHash(pepper, value as string)
      row[column] = keyring.encrypt(value as string)
      continue
    }
    row[column] = typeof value === 'string' ? keyring.encrypt(value) : null
  }
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

async function refuseExistingIds (tx: Executor, table: string, json: string): Promise<void> {
  // `table` is a constant of EXPORT_TABLES.
  const [taken] = await queryRows<{ id: string }>(tx, sql`select r.id from jsonb_to_recordset(${json}::text::jsonb) as r(id text)
    where exists (select 1 from ${sql.identifier(table)} t where t.id = r.id) limit 1`)
  if (taken) throw new ExportError(`${table}: ${taken.id} already exists here: nothing imported`)
}

/** Rows naming a serial must name one of the file's (imported just before, so the client's here). */
async function refuseForeignSerials (tx: Executor, table: string, clientId: string, json: string): Promise<void> {
  const [foreign] = await queryRows<{ serial_id: string }>(tx, sql`select r.serial_id from jsonb_to_recordset(${json}::text::jsonb) as r(serial_id text)
    where not exists (select 1 from serials s where s.id = r.serial_id and s.client_id = ${clientId}) limit 1`)
  if (foreign) throw new ExportError(`${table}: a row names serial ${foreign.serial_id}, which is not one of the file's: nothing imported`)
}

async function refuseUnknownDevices (tx: Executor, json: string): Promise<void> {
  const [unknown] = await queryRows<{ serial_id: string }>(tx, sql`select r.serial_id from jsonb_to_recordset(${json}::text::jsonb) as r(serial_id text, device_id text)
    where not exists (select 1 from devices d where d.serial_id = r.serial_id and d.device_id = r.device_id) limit 1`)
  if (unknown) throw new ExportError(`device_activations: an activation of serial ${unknown.serial_id} names a device the file does not hold: nothing imported`)
}

/**
 * Counters are never taken from the file: each serial's active devices are counted from the
 * imported devices (and must fit its limit), the usage rollups are summed again from the imported
 * usage events (from the first day that still has events: older rollups have none left, see
 * analytics/rollups.ts) and the hourly validation rollup from validation_stats. Returns how many
 * serials' counts differed from the file.
 */
async function recomputeCounters (tx: Executor, clientId: string): Promise<number> {
  const changed = await queryRows<{ id: string }>(tx, sql`update serials s set active_devices = n.active
    from (select s2.id, (select count(*)::int from devices d where d.serial_id = s2.id and d.active) as active
          from serials s2 where s2.client_id = ${clientId}) n
    where s.id = n.id and s.active_devices <> n.active returning s.id`)
  const [over] = await queryRows<{ id: string, active: number, max: number }>(tx, sql`select id, active_devices as active, max_usage_count as max
    from serials where client_id = ${clientId} and active_devices > max_usage_count order by id limit 1`)
  if (over) throw new ExportError(`serial ${over.id} has ${over.active} active devices, more than its limit of ${over.max}: release devices on the source (or raise its limit) and export again; nothing imported`)
  const first = sql`(select min(recorded_at) from usage_events where client_id = ${clientId})`
  await tx.execute(sql`delete from usage_daily where client_id = ${clientId} and day >= date_trunc('day', ${first}, 'UTC')`)
  await tx.execute(sql`insert into usage_daily (serial_id, client_id, day, events, quantity)
    select serial_id, client_id, date_trunc('day', recorded_at, 'UTC'), count(*), sum(quantity)
    from usage_events where client_id = ${clientId} group by serial_id, client_id, date_trunc('day', recorded_at, 'UTC')`)
  await tx.execute(sql`delete from usage_client_hourly where client_id = ${clientId} and hour >= date_trunc('hour', ${first}, 'UTC')`)
  await tx.execute(sql`insert into usage_client_hourly (client_id, hour, events, quantity)
    select client_id, date_trunc('hour', recorded_at, 'UTC'), count(*), sum(quantity)
    from usage_events where client_id = ${clientId} group by client_id, date_trunc('hour', recorded_at, 'UTC')`)
  await tx.execute(sql`delete from usage_device_days where client_id = ${clientId} and day >= date_trunc('day', ${first}, 'UTC')`)
  await tx.execute(sql`insert into usage_device_days (serial_id, client_id, day, device_id)
    select distinct serial_id, client_id, date_trunc('day', recorded_at, 'UTC'), device_id from usage_events where client_id = ${clientId}`)
  await tx.execute(sql`delete from validation_client_hourly where client_id = ${clientId}`)
  await tx.execute(sql`insert into validation_client_hourly (client_id, hour, code, count)
    select client_id, hour, code, sum(count) from validation_stats where client_id = ${clientId} group by client_id, hour, code`)
  return changed.length
}

/**
 * The source's entries become new entries of this chain, marked as imported: the chain attests
 * that this deployment imported them (from the file with `sha256`), not that they happened here.
 * Who did what, and when, stays in `importedFrom`.
 */
async function appendImportedAudit (tx: Executor, actor: Actor, meta: { ip: string, requestId: string }, rows: Array<Record<string, unknown>>, sha256: string): Promise<void> {
  const entries: AuditInput[] = rows.map((r) => {
    const changes = r.changes as Record<string, unknown>
    // A client moved twice keeps the whole trail: the earlier origin nests inside the new one.
    const earlier = changes.importedFrom === undefined ? {} : { importedFrom: changes.importedFrom }
    return {
      action: String(r.action),
      targetType: String(r.target_type),
      targetId: String(r.target_id),
      clientId: r.client_id as string,
      changes: { ...changes, importedFrom: { id: r.id, actorId: r.actor_id, actorRole: r.actor_role, createdAt: r.created_at, ip: r.ip ?? null, requestId: r.request_id ?? null, export: sha256, ...earlier } }
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
