import { bigint, bigserial, index, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'
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
