// Reading and re-writing export files the way a forger (or an insider holding the signing key)
// would: rows edited as JSON, then the checksum recomputed, and the MAC too when the key is known.
import { createHash, createHmac, scryptSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'

/**
 * The MAC key as docs/operations.md specifies it, computed here on its own (not with the service's
 * code): scrypt(key, "serials-export mac v1\n" + salt, N = 2^15, r = 8, p = 1, 32 bytes).
 */
export function macKeyOf (key: string, saltBase64: string): Buffer {
  return scryptSync(key, Buffer.concat([Buffer.from('serials-export mac v1\n'), Buffer.from(saltBase64, 'base64')]), 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 })
}

export interface ExportRow { t: string, r: Record<string, any> }
export interface ExportParts { header: Record<string, any>, rows: ExportRow[], manifest: Record<string, any> }

export function readExport (file: string): ExportParts {
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
  return {
    header: JSON.parse(lines[0]!),
    rows: lines.slice(1, -1).map((l) => JSON.parse(l) as ExportRow),
    manifest: JSON.parse(lines.at(-1)!)
  }
}

/** A deep copy to edit. */
export function copyOf (parts: ExportParts): ExportParts {
  return structuredClone(parts)
}

/**
 * Writes `parts` with the row counts and SHA-256 recomputed; with `key`, the MAC too (an insider's
 * file); without, the MAC is left as it was (a forger's: the checksum alone is easy to redo).
 */
export async function writeExport (file: string, parts: ExportParts, key?: string): Promise<void> {
  const body = [JSON.stringify(parts.header), ...parts.rows.map((row) => JSON.stringify({ t: row.t, r: row.r }))].map((l) => `${l}\n`).join('')
  const rowCounts: Record<string, number> = {}
  for (const table of parts.header.tables ?? []) rowCounts[table] = 0
  for (const row of parts.rows) rowCounts[row.t] = (rowCounts[row.t] ?? 0) + 1
  const manifest: Record<string, unknown> = { ...parts.manifest, rowCounts, sha256: createHash('sha256').update(body).digest('hex') }
  if (key !== undefined && parts.header.signature?.salt) manifest.mac = createHmac('sha256', macKeyOf(key, parts.header.signature.salt)).update(body).digest('hex')
  writeFileSync(file, `${body}${JSON.stringify(manifest)}\n`)
}

export function rowsOf (parts: ExportParts, table: string): Array<Record<string, any>> {
  return parts.rows.filter((row) => row.t === table).map((row) => row.r)
}

/** Inserts `row` after the last row of its table (or where the table's order puts it). */
export function addRow (parts: ExportParts, table: string, row: Record<string, any>, order: readonly string[]): void {
  const rank = order.indexOf(table)
  let at = parts.rows.length
  for (let i = 0; i < parts.rows.length; i++) if (order.indexOf(parts.rows[i]!.t) > rank) { at = i; break }
  parts.rows.splice(at, 0, { t: table, r: row })
}
