// Webhooks: subscriptions of a URL to domain events, delivered from the outbox (never inline in
// a request), signed with HMAC-SHA256 over `timestamp.body`, retried with backoff for 24 h.
import { createHmac, randomBytes } from 'node:crypto'
import { and, asc, eq, gt, inArray, isNull, lte, sql } from 'drizzle-orm'
import { z } from 'zod'
import { clients, webhookDeliveries, webhooks } from '../../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { DOMAIN_EVENTS } from '../../events/domain-events.ts'
import type { PublishedEvent } from '../../events/outbox-relay.ts'
import { canSeeClient, canSeeClientOf, clientScope, NO_CLIENT, requireRole, requireWriter, type Actor, type RequestMeta } from '../../kernel/access.ts'
import { queryRows, type Executor } from '../../infra/database.ts'
import type { Deps } from '../deps.ts'
import { NotFoundError, ValidationError } from '../../kernel/errors.ts'
import { newId } from '../../kernel/ids.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../../kernel/pagination.ts'
import { parseInput } from '../../kernel/input.ts'
import { webhookWants } from './webhook-match.ts'
import { postWebhook } from './webhook-send.ts'
import { normaliseWebhookUrl, refuseWebhookUrl, resolveWebhookTarget, type Resolver } from './webhook-url.ts'

export type WebhookRow = typeof webhooks.$inferSelect
export type WebhookView = Omit<WebhookRow, 'secretEnc'>
export type DeliveryRow = typeof webhookDeliveries.$inferSelect

/** Retries stop this long after the event, in ms. */
export const RETRY_WINDOW_MS = 24 * 3600_000
/** A webhook is disabled after this many failed attempts in a row (or when a delivery gives up). */
export const MAX_CONSECUTIVE_FAILURES = 20
const REQUEST_TIMEOUT_MS = 5000
const LEASE_MS = 60_000

/** Delay before attempt n+1: exponential from 10 s, capped at 1 h, with ±50 % jitter. */
export function backoffMs (attempts: number, random = Math.random()): number {
  const base = Math.min(10_000 * 2 ** Math.max(0, attempts - 1), 3600_000)
  return Math.round(base * (0.5 + random))
}

export function signWebhook (secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

const createInput = z.object({
  clientId: z.string().min(1).max(64).optional().nullable(),
  url: z.string().min(1).max(2000),
  events: z.array(z.enum(DOMAIN_EVENTS)).max(DOMAIN_EVENTS.length).optional().nullable()
})
const idInput = z.object({ id: z.string().min(1).max(64) })
/** The API's rules for each stored field (the secret as `create` makes it); import (domain/operations) applies them to imported rows too. */
export const WEBHOOK_FIELDS = { url: createInput.shape.url, events: createInput.shape.events, secret: z.string().regex(/^whsec_[A-Za-z0-9_-]{43}$/, 'is not a webhook secret as the service makes them') }

/** `resolveHost`: the DNS look-up of webhook hosts (default: the system's), replaceable for tests. */
export function createWebhookService (deps: Deps & { resolveHost?: Resolver }) {
  const { database, keyring, clock, config, metrics, log, resolveHost } = deps
  const db = database.db
  const view = ({ secretEnc: _secret, ...rest }: WebhookRow): WebhookView => rest

  async function findVisible (actor: Actor, id: string, exec: Executor = db): Promise<WebhookRow> {
    const [row] = await exec.select().from(webhooks).where(and(eq(webhooks.id, id), isNull(webhooks.deletedAt))).limit(1)
    // A webhook without a client (every client's events) is visible to ADMIN and AUDITOR only.
    if (!row || !canSeeClientOf(actor, row.clientId)) throw new NotFoundError(`webhook ${id} not found`)
    return row
  }

  async function deliver (delivery: DeliveryRow, hook: WebhookRow): Promise<void> {
    const now = clock()
    const body = JSON.stringify({ id: delivery.eventId, type: delivery.eventType, createdAt: delivery.createdAt.toISOString(), data: delivery.payload })
    const timestamp = Math.floor(now.getTime() / 1000)
    let statusCode: number | null = null
    let error: string | null = null
    // Resolved once: the delivery connects to exactly the addresses checked here.
    const target = await resolveWebhookTarget(hook.url, config.webhookAllowPrivate, resolveHost)
    if (!target.ok) {
      error = `url ${target.reason}`
    } else {
      try {
        statusCode = await postWebhook(target, {
          'content-type': 'application/json',
          'user-agent': 'Serials-Webhooks/1',
          'x-serials-event': delivery.eventType,
          'x-serials-delivery': delivery.id,
          'x-serials-timestamp': String(timestamp),
          'x-serials-signature': signWebhook(keyring.decrypt(hook.secretEnc), timestamp, body)
        }, body, REQUEST_TIMEOUT_MS)
      } catch (e) {
        error = (e as Error).name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS} ms` : 'connection failed'
      }
    }
    const ok = statusCode !== null && statusCode >= 200 && statusCode < 300
    const attempts = delivery.attempts + 1
    const giveUp = !ok && now.getTime() - delivery.createdAt.getTime() >= RETRY_WINDOW_MS
    const status = ok ? 'SUCCEEDED' : giveUp ? 'FAILED' : 'PENDING'
    metrics.webhookDeliveries.inc({ status: ok ? 'success' : giveUp ? 'gave_up' : 'failure' })
    await db.transaction(async (tx) => {
      await tx.update(webhookDeliveries).set({
        status,
        attempts,
        lastStatusCode: statusCode,
        lastError: ok ? null : (error ?? `HTTP ${statusCode}`),
        nextAttemptAt: new Date(now.getTime() + (status === 'PENDING' ? backoffMs(attempts) : 0)),
        updatedAt: now
      }).where(eq(webhookDeliveries.id, delivery.id))
      if (ok) {
        await tx.update(webhooks).set({ consecutiveFailures: 0 }).where(eq(webhooks.id, hook.id))
      } else {
        const [updated] = await tx.update(webhooks).set({ consecutiveFailures: sql`${webhooks.consecutiveFailures} + 1` }).where(eq(webhooks.id, hook.id)).returning()
        if (updated && updated.enabled && (giveUp || updated.consecutiveFailures >= MAX_CONSECUTIVE_FAILURES)) {
          await tx.update(webhooks).set({ enabled: false, disabledAt: now }).where(eq(webhooks.id, hook.id))
          log.warn({ webhookId: hook.id }, 'webhook disabled after persistent delivery failures')
        }
      }
    })
  }

  return {
    view,

    async create (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<{ webhook: WebhookView, secret: string }> {
      const data = parseInput(createInput, input)
      requireWriter(actor, 'change webhooks')
      // A MANAGER's webhook is its client's; without a clientId an ADMIN's is every client's.
      const scope = clientScope(actor)
      const clientId = data.clientId ?? (scope === NO_CLIENT ? null : scope)
      if (clientId && !canSeeClient(actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
      if (!clientId) requireRole(actor, ['ADMIN'], 'create a webhook for every client')
      const refusal = await refuseWebhookUrl(data.url, config.webhookAllowPrivate, resolveHost)
      if (refusal) throw new ValidationError('Validation failed', [{ field: 'url', message: refusal }])
      // Stored (and audited) as parsed and serialised: never the raw text with its `<`, `>` or `"`.
      const parsed = normaliseWebhookUrl(data.url)
      if (!parsed.ok) throw new ValidationError('Validation failed', [{ field: 'url', message: parsed.reason }])
      const url = parsed.url.href
      const secret = `whsec_${randomBytes(32).toString('base64url')}`
      const id = newId('whk')
      const row = await db.transaction(async (tx) => {
        // An ADMIN may name any client: one that does not exist is NOT_FOUND, not a foreign-key failure.
        if (clientId && (await tx.select({ id: clients.id }).from(clients).where(eq(clients.id, clientId)).limit(1)).length === 0) {
          throw new NotFoundError(`client ${clientId} not found`)
        }
        const [inserted] = await tx.insert(webhooks).values({ id, clientId, url, events: data.events ?? [], secretEnc: keyring.encrypt(secret) }).returning()
        await appendAudit(tx, actor, meta, [{ action: 'webhook.created', targetType: 'webhook', targetId: id, clientId, changes: { url, events: data.events ?? [] } }])
        return inserted!
      })
      return { webhook: view(row), secret }
    },

    async delete (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<WebhookView> {
      const { id } = parseInput(idInput, input)
      requireWriter(actor, 'change webhooks')
      return db.transaction(async (tx) => {
        const row = await findVisible(actor, id, tx)
        const [deleted] = await tx.update(webhooks).set({ deletedAt: clock(), enabled: false }).where(eq(webhooks.id, id)).returning()
        await tx.update(webhookDeliveries).set({ status: 'FAILED', lastError: 'webhook deleted' }).where(and(eq(webhookDeliveries.webhookId, id), eq(webhookDeliveries.status, 'PENDING')))
        await appendAudit(tx, actor, meta, [{ action: 'webhook.deleted', targetType: 'webhook', targetId: id, clientId: row.clientId }])
        return view(deleted!)
      })
    },

    async enable (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<WebhookView> {
      const { id } = parseInput(idInput, input)
      requireWriter(actor, 'change webhooks')
      return db.transaction(async (tx) => {
        const row = await findVisible(actor, id, tx)
        const [enabled] = await tx.update(webhooks).set({ enabled: true, disabledAt: null, consecutiveFailures: 0 }).where(eq(webhooks.id, id)).returning()
        await appendAudit(tx, actor, meta, [{ action: 'webhook.enabled', targetType: 'webhook', targetId: id, clientId: row.clientId }])
        return view(enabled!)
      })
    },

    async list (actor: Actor): Promise<WebhookView[]> {
      const scope = clientScope(actor)
      const rows = await db.select().from(webhooks).where(and(isNull(webhooks.deletedAt), scope === null ? undefined : eq(webhooks.clientId, scope))).orderBy(asc(webhooks.id))
      return rows.map(view)
    },

    /** Batch load by id (GraphQL node/nodes): in the order of ids, null where absent or not visible to the actor. */
    async loadMany (actor: Actor, ids: readonly string[]): Promise<Array<WebhookView | null>> {
      // By id, on the primary: an id just returned by a write must resolve (no replica lag).
      const rows = await database.db.select().from(webhooks).where(and(inArray(webhooks.id, [...ids]), isNull(webhooks.deletedAt)))
      const byId = new Map(rows.map((r) => [r.id, r]))
      return ids.map((id) => {
        const row = byId.get(id)
        return row && canSeeClientOf(actor, row.clientId) ? view(row) : null
      })
    },

    /** Deliveries by id (GraphQL node/nodes), visible when their webhook is. */
    async loadDeliveries (actor: Actor, ids: readonly string[]): Promise<Array<DeliveryRow | null>> {
      const rows = await database.db.select({ delivery: webhookDeliveries, hook: webhooks }).from(webhookDeliveries)
        .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId)).where(inArray(webhookDeliveries.id, [...ids]))
      const byId = new Map(rows.map((r) => [r.delivery.id, r]))
      return ids.map((id) => {
        const row = byId.get(id)
        return row && row.hook.deletedAt === null && canSeeClientOf(actor, row.hook.clientId) ? row.delivery : null
      })
    },

    async deliveries (actor: Actor, webhookId: string, args: PageArgs): Promise<Page<DeliveryRow>> {
      await findVisible(actor, webhookId)
      const size = pageSize(args.first)
      const after = decodeCursor(args.after)
      const where = [eq(webhookDeliveries.webhookId, webhookId)]
      if (after) where.push(gt(webhookDeliveries.id, after))
      const rows = await database.readDb.select().from(webhookDeliveries).where(and(...where)).orderBy(asc(webhookDeliveries.id)).limit(size + 1)
      return toPage(rows, size)
    },

    /** Relay batch hook: one delivery row per webhook that wants the event (webhookWants), in the relay's transaction. */
    async enqueue (tx: Executor, events: PublishedEvent[]): Promise<number> {
      if (events.length === 0) return 0
      // One round trip for the batch: every (event, webhook) pair the rule matches, events in order.
      const pairs = await queryRows<{ i: string | number, webhook_id: string }>(tx, sql`
        select e.i, ${webhooks.id} as webhook_id
        from unnest(${sql.param(events.map((e) => e.type))}::text[], ${sql.param(events.map((e) => e.clientId))}::text[]) with ordinality as e(type, client_id, i)
        join ${webhooks} on ${webhookWants(sql`e.type`, sql`e.client_id`)}
        order by e.i, ${webhooks.id}`)
      const rows = pairs.map((p) => {
        const event = events[Number(p.i) - 1]!
        return { id: newId('whd'), webhookId: p.webhook_id, eventId: String(event.id), eventType: event.type, payload: event.payload }
      })
      for (let i = 0; i < rows.length; i += 1000) await tx.insert(webhookDeliveries).values(rows.slice(i, i + 1000))
      return rows.length
    },

    /**
     * Sends up to `limit` due deliveries. Rows are leased first (SKIP LOCKED), so several instances
     * share the work. `more`: the batch was full, so more may be due now.
     */
    async deliverDue (limit = 20): Promise<{ delivered: number, more: boolean }> {
      const now = clock()
      const due = await db.transaction(async (tx) => {
        const rows = await tx.select().from(webhookDeliveries)
          .where(and(eq(webhookDeliveries.status, 'PENDING'), lte(webhookDeliveries.nextAttemptAt, now)))
          .orderBy(asc(webhookDeliveries.nextAttemptAt)).limit(limit).for('update', { skipLocked: true })
        if (rows.length === 0) return []
        await tx.update(webhookDeliveries).set({ nextAttemptAt: new Date(now.getTime() + LEASE_MS) }).where(inArray(webhookDeliveries.id, rows.map((r) => r.id)))
        return rows
      })
      if (due.length === 0) return { delivered: 0, more: false }
      const hooks = await db.select().from(webhooks).where(inArray(webhooks.id, [...new Set(due.map((d) => d.webhookId))]))
      const byId = new Map(hooks.map((h) => [h.id, h]))
      await Promise.all(due.map(async (delivery) => {
        const hook = byId.get(delivery.webhookId)
        if (!hook || !hook.enabled || hook.deletedAt) {
          await db.update(webhookDeliveries).set({ status: 'FAILED', lastError: 'webhook disabled or deleted' }).where(eq(webhookDeliveries.id, delivery.id))
          return
        }
        await deliver(delivery, hook).catch((error: unknown) => log.warn({ err: error, deliveryId: delivery.id }, 'webhook delivery bookkeeping failed'))
      }))
      return { delivered: due.length, more: due.length === limit }
    }
  }
}

export type WebhookService = ReturnType<typeof createWebhookService>
