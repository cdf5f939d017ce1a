import { index, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
import { clients } from './clients.ts'
import { id } from './columns.ts'

export const apiKeys = pgTable('api_keys', {
  id: id(),
  name: text('name').notNull(),
  /** ADMIN | MANAGER | AUDITOR */
  role: text('role').notNull(),
  /** Required for MANAGER keys: the one client they see; null = all clients. */
  clientId: text('client_id').references(() => clients.id),
  /** HMAC-SHA256(ENCRYPTION_PEPPER, full secret), hex. */
  secretHash: text('secret_hash').notNull(),
  /** First characters of the secret, shown in lists so a key can be recognised. */
  prefix: text('prefix').notNull(),
  /** null = never expires */
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  /** Flushed in the background, at most a minute behind. */
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  /** null = not revoked */
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  createdBy: text('created_by'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [
  uniqueIndex('api_keys_secret_hash_key').on(t.secretHash),
  index('api_keys_client_id_idx').on(t.clientId)
])
