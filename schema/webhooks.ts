import { boolean, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core'
import { clients } from './clients.ts'
import { id } from './columns.ts'

export const webhooks = pgTable('webhooks', {
  id: id(),
  /** null = receives events of every client (ADMIN only) */
  clientId: text('client_id').references(() => clients.id),
  url: text('url').notNull(),
  /** Domain event names; empty = every event. */
  events: text('events').array().notNull(),
  /** AES-256-GCM ciphertext of the signing secret. */
  secretEnc: text('secret_enc').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  /** Deliveries that failed in a row; reset by a success. */
  consecutiveFailures: integer('consecutive_failures').notNull().default(0),
  /** null = enabled, or disabled by hand */
  disabledAt: timestamp('disabled_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  /** null = live */
  deletedAt: timestamp('deleted_at', { withTimezone: true })
}, (t) => [index('webhooks_client_id_idx').on(t.clientId)])

export const webhookDeliveries = pgTable('webhook_deliveries', {
  id: id(),
  webhookId: text('webhook_id').notNull().references(() => webhooks.id),
  /** outbox.id of the event delivered */
  eventId: text('event_id').notNull(),
  eventType: text('event_type').notNull(),
  payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
  /** PENDING | SUCCEEDED | FAILED (gave up after 24 h) */
  status: text('status').notNull().default('PENDING'),
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
  /** HTTP status of the last attempt; null = none yet or network error */
  lastStatusCode: integer('last_status_code'),
  lastError: text('last_error'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [
  index('webhook_deliveries_due_idx').on(t.status, t.nextAttemptAt),
  index('webhook_deliveries_webhook_idx').on(t.webhookId, t.createdAt)
])
