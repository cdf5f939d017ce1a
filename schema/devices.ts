import { sql } from 'drizzle-orm'
import { bigint, bigserial, boolean, index, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
import { id } from './columns.ts'
import { serials } from './serials.ts'

export const devices = pgTable('devices', {
  id: id(),
  serialId: text('serial_id').notNull().references(() => serials.id),
  /** The application's own device identifier (1–128 printable characters). */
  deviceId: text('device_id').notNull(),
  /** AES-256-GCM ciphertext of the JSON device info; null = none sent. */
  deviceInfoEnc: text('device_info_enc'),
  /** true while the device holds one of the serial's slots. */
  active: boolean('active').notNull().default(true),
  firstSeenAt: timestamp('first_seen_at', { withTimezone: true }).notNull().defaultNow(),
  /** Updated by the background flusher (at most a few seconds behind). */
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }).notNull().defaultNow(),
  /** null = active, or never released */
  deactivatedAt: timestamp('deactivated_at', { withTimezone: true }),
  /** Successful validations seen from this device (flushed in the background). */
  validationCount: bigint('validation_count', { mode: 'number' }).notNull().default(0),
  /** Floating policies only: the slot is held until then; null = not leased (node-locked). */
  leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true })
}, (t) => [
  uniqueIndex('devices_serial_device_key').on(t.serialId, t.deviceId),
  index('devices_serial_active_idx').on(t.serialId, t.active),
  // The cull sweep's path: active leases by expiry.
  index('devices_lease_expires_idx').on(t.leaseExpiresAt).where(sql`${t.active} and ${t.leaseExpiresAt} is not null`)
])

/** One row per new-device activation, for the rolling 24 h cap; rows older than a day are pruned. */
export const deviceActivations = pgTable('device_activations', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  serialId: text('serial_id').notNull(),
  deviceId: text('device_id').notNull(),
  activatedAt: timestamp('activated_at', { withTimezone: true }).notNull()
}, (t) => [
  index('device_activations_serial_time_idx').on(t.serialId, t.activatedAt)
])
