import { bigint, bigserial, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'

/**
 * Append-only usage records. seq is the resume cursor of the usageRecorded subscription.
 *
 * Partitioned by month on recorded_at (PostgreSQL declarative partitioning; drizzle-kit does not
 * model it: the migration usage_partitions creates the parent, src/domain/usage/partitions.ts the monthly
 * partitions `usage_events_YYYY_MM` ahead of time, plus `usage_events_default` for any row no month
 * holds yet). A unique index on a partitioned table must hold the partition key, hence the primary
 * key (id, recorded_at). seq gets a plain index: its values come only from its sequence, so it is
 * unique by construction, and a unique (seq, recorded_at) would not enforce that anyway.
 */
export const usageEvents = pgTable('usage_events', {
  /** Prefixed, time-ordered id (`use_01J…`); unique with recorded_at (see the primary key). */
  id: text('id').notNull(),
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
  primaryKey({ name: 'usage_events_pkey', columns: [t.id, t.recordedAt] }),
  index('usage_events_seq_idx').on(t.seq),
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

// Rollups for client-wide analytics, maintained incrementally in the statements that write the
// raw rows (usage writer, validation flusher): a client's 30 days read a few hundred thousand
// rollup rows instead of millions of events. Serial-scoped queries keep reading the raw tables.

/** Usage per serial and day (UTC): events and quantity. */
export const usageDaily = pgTable('usage_daily', {
  serialId: text('serial_id').notNull(),
  clientId: text('client_id').notNull(),
  day: timestamp('day', { withTimezone: true }).notNull(),
  events: integer('events').notNull().default(0),
  quantity: bigint('quantity', { mode: 'number' }).notNull().default(0)
}, (t) => [
  uniqueIndex('usage_daily_key').on(t.serialId, t.day),
  index('usage_daily_client_day_idx').on(t.clientId, t.day)
])

/** Usage per client and hour (UTC). */
export const usageClientHourly = pgTable('usage_client_hourly', {
  clientId: text('client_id').notNull(),
  hour: timestamp('hour', { withTimezone: true }).notNull(),
  events: integer('events').notNull().default(0),
  quantity: bigint('quantity', { mode: 'number' }).notNull().default(0)
}, (t) => [
  uniqueIndex('usage_client_hourly_key').on(t.clientId, t.hour)
])

/** Which devices recorded usage on which day: distinct devices per day without a raw scan. */
export const usageDeviceDays = pgTable('usage_device_days', {
  serialId: text('serial_id').notNull(),
  clientId: text('client_id').notNull(),
  day: timestamp('day', { withTimezone: true }).notNull(),
  deviceId: text('device_id').notNull()
}, (t) => [
  uniqueIndex('usage_device_days_key').on(t.serialId, t.day, t.deviceId),
  index('usage_device_days_client_day_idx').on(t.clientId, t.day)
])

/** Validation counts per client, hour and code (the client-wide sum of validation_stats). */
export const validationClientHourly = pgTable('validation_client_hourly', {
  clientId: text('client_id').notNull(),
  hour: timestamp('hour', { withTimezone: true }).notNull(),
  code: text('code').notNull(),
  count: integer('count').notNull().default(0)
}, (t) => [
  uniqueIndex('validation_client_hourly_key').on(t.clientId, t.hour, t.code)
])

/**
 * Validation counts per client, minute (UTC) and code, upserted by the validation flusher next to
 * validation_client_hourly and kept for 48 hours (the flusher prunes older minutes): the console's
 * "validations per minute" chart. Not rebuildable from the hourly tables (they have no minutes).
 */
export const validationClientMinutely = pgTable('validation_client_minutely', {
  clientId: text('client_id').notNull(),
  minute: timestamp('minute', { withTimezone: true }).notNull(),
  code: text('code').notNull(),
  count: integer('count').notNull().default(0)
}, (t) => [
  uniqueIndex('validation_client_minutely_key').on(t.clientId, t.minute, t.code),
  index('validation_client_minutely_minute_idx').on(t.minute)
])
