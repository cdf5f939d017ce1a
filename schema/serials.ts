import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
import { clients } from './clients.ts'
import { id, timestamps } from './columns.ts'
import { policies } from './policies.ts'

export const serials = pgTable('serials', {
  id: id(),
  clientId: text('client_id').notNull().references(() => clients.id),
  /** HMAC-SHA256(ENCRYPTION_PEPPER, normalised number), hex: the only lookup path. */
  numberHash: text('number_hash').notNull(),
  /** AES-256-GCM ciphertext of the normalised number; read only by revealSerialNumber. */
  numberEnc: text('number_enc').notNull(),
  /** Last group of five characters, for maskedNumber. */
  numberTail: text('number_tail').notNull(),
  /** Maximum number of simultaneously active devices. */
  /** The device limit. The column keeps its first name: old and new instances share it during a rolling upgrade. */
  maxDevices: integer('max_usage_count').notNull().default(1),
  /** Count of devices with active = true; kept in step by the activation statement. */
  activeDevices: integer('active_devices').notNull().default(0),
  /** null = never expires */
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  isDemo: boolean('is_demo').notNull().default(false),
  metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull().default({}),
  /** ACTIVE | SUSPENDED | REVOKED (final); EXPIRED is derived from expires_at. */
  status: text('status').notNull().default('ACTIVE'),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  revokeReason: text('revoke_reason'),
  /** Set for serials made by one createSerials call, so a batch can be found again. */
  batchId: text('batch_id'),
  /** null = no policy: every limit is the serial's own (the behaviour before policies). */
  policyId: text('policy_id').references(() => policies.id),
  /** true = max_usage_count follows the policy's maxDevices when the policy changes. */
  inheritsMaxDevices: boolean('inherits_max_devices').notNull().default(false),
  /** true = expires_at is created_at + the policy's durationDays, recomputed when it changes. */
  inheritsDuration: boolean('inherits_duration').notNull().default(false),
  /** When serial.expiring was raised for the current expires_at; null = not yet. */
  expiringNotifiedAt: timestamp('expiring_notified_at', { withTimezone: true }),
  /** When serial.expired was raised for the current expires_at; null = not yet. */
  expiredNotifiedAt: timestamp('expired_notified_at', { withTimezone: true }),
  /** Last device.limit_reached event (at most one per hour); null = never. */
  limitReachedAt: timestamp('limit_reached_at', { withTimezone: true }),
  ...timestamps
}, (t) => [
  uniqueIndex('serials_number_hash_key').on(t.numberHash),
  index('serials_client_id_idx').on(t.clientId, t.id),
  index('serials_client_status_idx').on(t.clientId, t.status),
  index('serials_expires_at_idx').on(t.expiresAt),
  index('serials_policy_id_idx').on(t.policyId),
  // The signed revocation list's query (src/revocations/): a few revoked serials among many.
  index('serials_revoked_idx').on(t.revokedAt).where(sql`status = 'REVOKED'`),
  // Not <= max_usage_count: lowering the maximum leaves existing devices active until released.
  check('serials_active_devices_nonnegative', sql`${t.activeDevices} >= 0`)
])
