// Re-encrypts every encrypted column with the current ENCRYPTION_KEY, in batches. Safe to run while
// the service serves traffic (each row is updated only if it still holds the value that was read)
// and resumable (rows already under the current key are skipped), so an interrupted run is simply
// started again.
import { sql } from 'drizzle-orm'
import type { IKeyring } from '../../infra/crypto.ts'
import { queryRows, type Executor } from '../../infra/database.ts'

/** Every encrypted column: table, key columns, column, and whether the ciphertext sits in `{enc}` JSON. */
export const ENCRYPTED_COLUMNS = [
  { table: 'clients', keys: ['id'], column: 'contact_email_enc', json: false },
  { table: 'serials', keys: ['id'], column: 'number_enc', json: false },
  { table: 'devices', keys: ['id'], column: 'device_info_enc', json: false },
  { table: 'webhooks', keys: ['id'], column: 'secret_enc', json: false },
  { table: 'idempotency_keys', keys: ['scope', 'key'], column: 'response', json: true }
] as const

export interface RotationReport { table: string, column: string, rotated: number }

export async function rotateEncryptionKey (db: Executor, keyring: IKeyring, options: { batchSize?: number, log?: (line: string) => void } = {}): Promise<RotationReport[]> {
  const batchSize = options.batchSize ?? 500
  const current = `v1.${keyring.currentKeyId}.%`
  const reports: RotationReport[] = []
  for (const spec of ENCRYPTED_COLUMNS) {
    const col = sql.identifier(spec.column)
    const table = sql.identifier(spec.table)
    // Text of the ciphertext: the column itself, or the `enc` member of a JSON answer.
    const cipherExpr = spec.json ? sql`(${col}->>'enc')` : col
    const keys: readonly string[] = spec.keys
    const selectKeys = keys.length === 2
      ? sql`${sql.identifier(keys[0]!)}::text as k0, ${sql.identifier(keys[1]!)}::text as k1`
      : sql`${sql.identifier(keys[0]!)}::text as k0`
    let rotated = 0
    // Rows that fail to decrypt (unknown key) are reported by the error; nothing is skipped silently.
    for (;;) {
      const rows = await queryRows<{ k0: string, k1?: string, cipher: string }>(db, sql`
        select ${selectKeys}, ${cipherExpr} as cipher
        from ${table}
        where ${cipherExpr} is not null and ${cipherExpr} not like ${current}
        limit ${batchSize}`)
      if (rows.length === 0) break
      let changed = 0
      for (const row of rows) {
        const next = keyring.encrypt(keyring.decrypt(row.cipher))
        const where = keys.length === 2
          ? sql`${sql.identifier(keys[0]!)} = ${row.k0} and ${sql.identifier(keys[1]!)} = ${row.k1}`
          : sql`${sql.identifier(keys[0]!)} = ${row.k0}`
        const set = spec.json ? sql`jsonb_set(${col}, '{enc}', to_jsonb(${next}::text))` : sql`${next}`
        const updated = await queryRows<{ ok: number }>(db, sql`update ${table} set ${col} = ${set}
          where ${where} and ${cipherExpr} = ${row.cipher} returning 1 as ok`)
        changed += updated.length
      }
      rotated += changed
      options.log?.(`${spec.table}.${spec.column}: ${rotated} re-encrypted`)
      // A batch where every row changed under us concurrently would loop forever; rows that changed
      // were written by the service with the current key, so they no longer match and the loop ends.
    }
    reports.push({ table: spec.table, column: spec.column, rotated })
  }
  return reports
}
