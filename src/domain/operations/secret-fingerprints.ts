// The database remembers which secrets its data was written with, as fingerprints, so an instance
// started with another ENCRYPTION_PEPPER (every lookup hash differs: every serial "NOT_FOUND"),
// another ENCRYPTION_KEY (nothing decrypts) or another JWT_SECRET (every token refused) stops at
// start-up with one line naming the variable, instead of failing quietly request by request.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { Config } from '../../config/config.ts'
import { queryRows, type Executor } from '../../infra/database.ts'

/** A fixed label keyed by the secret: the fingerprint proves equality and reveals nothing else. */
const LABEL = 'serials/secret-fingerprint/v1'
export const RETIRED_PREFIX = 'ENCRYPTION_KEYS_PREVIOUS/'

export function fingerprintOf (name: 'ENCRYPTION_PEPPER' | 'JWT_SECRET' | 'ENCRYPTION_KEY', secret: Buffer | string): string {
  // Every encryption key (current or previous) is fingerprinted under one label, so a key keeps its
  // fingerprint when it moves from ENCRYPTION_KEY to ENCRYPTION_KEYS_PREVIOUS.
  return createHmac('sha256', secret).update(`${LABEL}:${name}`).digest('hex')
}

function same (a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex')
  const y = Buffer.from(b, 'hex')
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The configured secrets do not belong to this database. The message names the variable. */
export class SecretMismatchError extends Error {
  constructor (readonly variable: string, message: string) {
    super(message)
    this.name = 'SecretMismatchError'
  }
}

export interface SecretFingerprints {
  ENCRYPTION_PEPPER: string
  JWT_SECRET: string
  ENCRYPTION_KEY: string
  /** Fingerprints of ENCRYPTION_KEYS_PREVIOUS, in order. */
  ENCRYPTION_KEYS_PREVIOUS: string[]
}

export function configFingerprints (config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious'>): SecretFingerprints {
  return {
    ENCRYPTION_PEPPER: fingerprintOf('ENCRYPTION_PEPPER', config.pepper),
    JWT_SECRET: fingerprintOf('JWT_SECRET', config.jwtSecret),
    ENCRYPTION_KEY: fingerprintOf('ENCRYPTION_KEY', config.encryptionKey),
    ENCRYPTION_KEYS_PREVIOUS: config.encryptionKeysPrevious.map((key) => fingerprintOf('ENCRYPTION_KEY', key))
  }
}

export type SecretName = 'ENCRYPTION_PEPPER' | 'JWT_SECRET' | 'ENCRYPTION_KEY'

/**
 * The configured secrets that differ from fingerprints recorded elsewhere (a backup's header),
 * without a database: the same rules as checkSecretFingerprints (an ENCRYPTION_KEY differing is
 * fine while the recorded key is in ENCRYPTION_KEYS_PREVIOUS). A name not recorded is not compared.
 */
export function differingSecrets (recorded: Readonly<Record<string, string>>, config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious'>): SecretName[] {
  const mine = configFingerprints(config)
  const differ: SecretName[] = []
  for (const name of ['ENCRYPTION_PEPPER', 'JWT_SECRET'] as const) {
    const fp = recorded[name]
    if (typeof fp === 'string' && !same(fp, mine[name])) differ.push(name)
  }
  const key = recorded.ENCRYPTION_KEY
  if (typeof key === 'string' && !same(key, mine.ENCRYPTION_KEY) && !mine.ENCRYPTION_KEYS_PREVIOUS.some((fp) => same(fp, key))) differ.push('ENCRYPTION_KEY')
  return differ
}

interface Row { name: string, fingerprint: string, updated_at: string | Date }

export async function storedFingerprints (db: Executor): Promise<Map<string, Row>> {
  const rows = await queryRows<Row>(db, sql`select name, fingerprint, updated_at from secret_fingerprints`)
  return new Map(rows.map((row) => [row.name, row]))
}

const day = (value: string | Date) => new Date(value).toISOString().slice(0, 10)

/**
 * Writes the fingerprints missing from the database (the first start, or a variable the database
 * did not know yet), then compares every configured secret with what the database holds. Two
 * instances starting together on an empty table: the first insert wins, the other compares.
 */
export async function checkSecretFingerprints (db: Executor, config: Pick<Config, 'pepper' | 'jwtSecret' | 'encryptionKey' | 'encryptionKeysPrevious'>): Promise<void> {
  const mine = configFingerprints(config)
  await db.execute(sql`insert into secret_fingerprints (name, fingerprint) values
    ('ENCRYPTION_PEPPER', ${mine.ENCRYPTION_PEPPER}), ('JWT_SECRET', ${mine.JWT_SECRET}), ('ENCRYPTION_KEY', ${mine.ENCRYPTION_KEY})
    on conflict (name) do nothing`)
  const stored = await storedFingerprints(db)
  for (const name of ['ENCRYPTION_PEPPER', 'JWT_SECRET'] as const) {
    const row = stored.get(name)!
    if (!same(row.fingerprint, mine[name])) {
      throw new SecretMismatchError(name, `${name} differs from the one this database was set up with on ${day(row.updated_at)} (its stored fingerprint does not match): start every instance with the same ${name}${name === 'ENCRYPTION_PEPPER' ? ' (with another pepper no serial number or API key would be found)' : ''}`)
    }
  }
  const current = stored.get('ENCRYPTION_KEY')!
  if (same(current.fingerprint, mine.ENCRYPTION_KEY)) return
  // A new key with the database's key among the previous ones: a rotation under way (new data is
  // written with the new key; rotate-encryption-key re-encrypts the rest and records the new key).
  if (mine.ENCRYPTION_KEYS_PREVIOUS.some((fp) => same(fp, current.fingerprint))) return
  const retired = stored.get(`${RETIRED_PREFIX}${mine.ENCRYPTION_KEY.slice(0, 16)}`)
  if (retired && same(retired.fingerprint, mine.ENCRYPTION_KEY)) {
    throw new SecretMismatchError('ENCRYPTION_KEY', `ENCRYPTION_KEY is a key this database rotated out (current key since ${day(current.updated_at)}): set ENCRYPTION_KEY to the current key, and keep this one in ENCRYPTION_KEYS_PREVIOUS if you like`)
  }
  throw new SecretMismatchError('ENCRYPTION_KEY', `ENCRYPTION_KEY does not match the key this database's data is encrypted with (set on ${day(current.updated_at)}), and ENCRYPTION_KEYS_PREVIOUS does not hold it either: start with the database's key, or put it in ENCRYPTION_KEYS_PREVIOUS to rotate`)
}

/**
 * After every encrypted column was re-encrypted with ENCRYPTION_KEY: that key becomes the
 * database's key, and the keys it replaced are remembered as rotated out.
 */
export async function recordRotatedKeys (db: Executor, current: Buffer, previous: Buffer[]): Promise<void> {
  const now = fingerprintOf('ENCRYPTION_KEY', current)
  const before = (await storedFingerprints(db)).get('ENCRYPTION_KEY')?.fingerprint
  const retired = new Set(previous.map((key) => fingerprintOf('ENCRYPTION_KEY', key)))
  if (before && before !== now) retired.add(before)
  retired.delete(now)
  for (const fp of retired) {
    await db.execute(sql`insert into secret_fingerprints (name, fingerprint) values (${`${RETIRED_PREFIX}${fp.slice(0, 16)}`}, ${fp})
      on conflict (name) do nothing`)
  }
  // The key is current again if it had been rotated out before.
  await db.execute(sql`delete from secret_fingerprints where name = ${`${RETIRED_PREFIX}${now.slice(0, 16)}`}`)
  await db.execute(sql`insert into secret_fingerprints (name, fingerprint) values ('ENCRYPTION_KEY', ${now})
    on conflict (name) do update set fingerprint = excluded.fingerprint, updated_at = now()`)
}
