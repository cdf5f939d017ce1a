import { sql } from 'drizzle-orm'
import { boolean, check, integer, pgTable, text } from 'drizzle-orm/pg-core'
import { id, timestamps } from './columns.ts'

/** A vendor-wide licensing template; serials created with its id inherit its rules. */
export const policies = pgTable('policies', {
  id: id(),
  name: text('name').notNull(),
  /** Device limit a serial takes at creation (unless its input sets maxDevices). */
  maxDevices: integer('max_devices').notNull(),
  /** Days from a serial's creation to its expiry; null = never expires. */
  durationDays: integer('duration_days'),
  /** true = a device's slot is a lease renewed by validations and heartbeats. */
  floating: boolean('floating').notNull().default(false),
  /** Expected interval between heartbeats, in seconds (5–86,400); used only when floating. */
  heartbeatSeconds: integer('heartbeat_seconds').notNull().default(600),
  /** Extra seconds a lease survives past a missed heartbeat (0–86,400). */
  heartbeatGraceSeconds: integer('heartbeat_grace_seconds').notNull().default(60),
  /** New-device activations per serial in a rolling 24 h; null = unlimited. */
  maxActivationsPerDay: integer('max_activations_per_day'),
  /** Upper bound on a license certificate's ttlDays; null = the certificate default and maximum. */
  offlineTtlDays: integer('offline_ttl_days'),
  /** Upper-case codes (A-Z 0-9 _ . -, 1–64 characters) the license unlocks. */
  entitlements: text('entitlements').array().notNull().default(sql`'{}'::text[]`),
  ...timestamps
}, (t) => [
  check('policies_heartbeat_seconds_range', sql`${t.heartbeatSeconds} between 5 and 86400`),
  check('policies_heartbeat_grace_range', sql`${t.heartbeatGraceSeconds} between 0 and 86400`)
])
