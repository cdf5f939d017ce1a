import { bigserial, index, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
import { id } from './columns.ts'

/** Append-only usage records. seq is the resume cursor of the usageRecorded subscription. */
export const usageEvents = pgTable('usage_events', {
  id: id(),
  seq: bigserial('seq', { mode: 'number' }).notNull(),
  serialId: text('serial_id').notNull(),
  clientId: text('client_id').notNull(),
  deviceId: text('device_id').notNull(),
  /** USAGE (recordUsage) — kept open for future kinds such as HEARTBEAT. */
  kind: text('kind').notNull().default('USAGE'),
  quantity: integer('quantity').notNull().default(1),
  /** null = no feature named */
  feature: text('feature'),
  ip: text('ip'),
  recordedAt: timestamp('recorded_at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [
  uniqueIndex('usage_events_seq_key').on(t.seq),
  index('usage_events_serial_time_idx').on(t.serialId, t.recordedAt),
  index('usage_events_client_time_idx').on(t.clientId, t.recordedAt)
])

/** Validation counts per serial, hour and code, maintained by the background flusher. */
export const validationStats = pgTable('validation_stats', {
  serialId: text('serial_id').notNull(),
  clientId: text('client_id').notNull(),
  /** Start of the hour (UTC). */
  hour: timestamp('hour', { withTimezone: true }).notNull(),
  code: text('code').notNull(),
  count: integer('count').notNull().default(0)
}, (t) => [
  uniqueIndex('validation_stats_key').on(t.serialId, t.hour, t.code),
  index('validation_stats_client_hour_idx').on(t.clientId, t.hour)
])
