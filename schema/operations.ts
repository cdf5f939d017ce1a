import { pgTable, text } from 'drizzle-orm/pg-core'
import { timestamps } from './columns.ts'

/**
 * Fingerprints of the secrets this database's data depends on (see src/domain/operations/secret-fingerprints.ts):
 * HMAC-SHA256 of a fixed label keyed by the secret, never the secret itself. `name` is the variable
 * (`ENCRYPTION_PEPPER`, `JWT_SECRET`, `ENCRYPTION_KEY` = the key new data is written with) or
 * `ENCRYPTION_KEYS_PREVIOUS/<fingerprint prefix>` for a key that was rotated out.
 */
export const secretFingerprints = pgTable('secret_fingerprints', {
  name: text('name').primaryKey(),
  /** Hex HMAC-SHA256; compared in constant time. */
  fingerprint: text('fingerprint').notNull(),
  ...timestamps
})
