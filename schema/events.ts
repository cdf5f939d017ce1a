import { sql } from 'drizzle-orm'
import { bigserial, index, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core'

/** Transactional outbox: written with the change, relayed to the event bus after commit. */
export const outbox = pgTable('outbox', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  /** Domain event name, e.g. serial.revoked */
  type: text('type').notNull(),
  /** Id of the object the event is about (serial, client, device…): ordering key. */
  aggregateId: text('aggregate_id').notNull(),
  /** null = not tied to one client */
  clientId: text('client_id'),
  payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  /** null = not yet published */
  publishedAt: timestamp('published_at', { withTimezone: true })
}, (t) => [
  // Partial index: the relay only ever scans unpublished rows.
  index('outbox_pending_idx').on(t.id).where(sql`${t.publishedAt} IS NULL`),
  index('outbox_published_at_idx').on(t.publishedAt)
])

/** Stored first answer of an idempotent request, replayed for retries with the same key. */
export const idempotencyKeys = pgTable('idempotency_keys', {
  /** Who may reuse the key: `usage:<serialId>` or `bulk:<clientId>`. */
  scope: text('scope').notNull(),
  key: text('key').notNull(),
  /** SHA-256 of the request body, so a key reused for another request is a CONFLICT. */
  requestHash: text('request_hash').notNull(),
  /** The answer; null while the first request is still running. */
  response: jsonb('response'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [primaryKey({ columns: [t.scope, t.key] })])
