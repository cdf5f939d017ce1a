import { index, integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core'
import { id, timestamps } from './columns.ts'

export const clients = pgTable('clients', {
  id: id(),
  /** Vendor's own reference, stored upper-case: 1–32 letters, digits and dashes. */
  clientNumber: text('client_number').notNull(),
  name: text('name').notNull(),
  /** AES-256-GCM ciphertext (keyring format, see src/infra/crypto.ts). */
  contactEmailEnc: text('contact_email_enc').notNull(),
  /** ACTIVE | SUSPENDED */
  status: text('status').notNull().default('ACTIVE'),
  /** Authenticated requests per minute for this client's keys; null = no quota beyond RATE_LIMIT. */
  quotaPerMinute: integer('quota_per_minute'),
  ...timestamps
}, (t) => [
  uniqueIndex('clients_client_number_key').on(t.clientNumber),
  index('clients_status_idx').on(t.status)
])
