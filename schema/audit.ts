import { bigserial, index, jsonb, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'

/** Hash-chained audit trail: hash = SHA-256(prevHash + canonical entry). */
export const auditLog = pgTable('audit_log', {
  id: text('id').primaryKey(),
  /** Chain position; appends are serialised by an advisory lock. */
  seq: bigserial('seq', { mode: 'number' }).notNull(),
  /** API key id, `env:ADMIN_API_KEY`, or `system`. */
  actorId: text('actor_id').notNull(),
  actorRole: text('actor_role').notNull(),
  /** resource.verb, e.g. serial.revoked */
  action: text('action').notNull(),
  targetType: text('target_type').notNull(),
  targetId: text('target_id').notNull(),
  /** null = not tied to one client */
  clientId: text('client_id'),
  changes: jsonb('changes').$type<Record<string, unknown>>().notNull().default({}),
  ip: text('ip'),
  requestId: text('request_id'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  /** Hash of the previous entry; all zeros for the first. */
  prevHash: text('prev_hash').notNull(),
  hash: text('hash').notNull()
}, (t) => [
  uniqueIndex('audit_log_seq_key').on(t.seq),
  index('audit_log_target_idx').on(t.targetId),
  index('audit_log_actor_idx').on(t.actorId),
  index('audit_log_client_idx').on(t.clientId, t.seq)
])
