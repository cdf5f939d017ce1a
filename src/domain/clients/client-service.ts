import { and, asc, eq, gt, ilike, inArray, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import { clients } from '../../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { writeEvents, type DomainEventType } from '../../events/domain-events.ts'
import { canSeeClient, clientScope, requireRole, type Actor, type RequestMeta } from '../../kernel/access.ts'
import type { Deps } from '../deps.ts'
import { clientStatusCache } from '../cached-state.ts'
import { pgErrorCode } from '../../infra/database.ts'
import { ConflictError, NotFoundError, AuthorizationError } from '../../kernel/errors.ts'
import { newId } from '../../kernel/ids.ts'
import { decodeCursor, pageSize, toPage, type PageArgs, type Page } from '../../kernel/pagination.ts'
import { parseInput } from '../../kernel/input.ts'

export type ClientRow = typeof clients.$inferSelect
export type ClientStatus = 'ACTIVE' | 'SUSPENDED'

/** What the API shows: the contact email decrypted, nothing else secret. */
export interface ClientView extends Omit<ClientRow, 'contactEmailEnc'> { contactEmail: string }

const clientNumber = z.string().trim().regex(/^[A-Za-z0-9-]{1,32}$/, 'must be 1–32 letters, digits and dashes').transform((s) => s.toUpperCase())
const name = z.string().trim().min(1).max(200)
const email = z.email().max(320)
const quota = z.number().int().min(1).max(1_000_000).nullable()
/** The API's rules for each stored field; import (domain/operations) applies them to imported rows too. */
export const CLIENT_FIELDS = { clientNumber, name, contactEmail: email, quotaPerMinute: quota }

const createInput = z.object({ clientNumber, name, contactEmail: email, quotaPerMinute: quota.optional() })
const updateInput = z.object({ id: z.string().min(1), name: name.optional(), contactEmail: email.optional(), quotaPerMinute: quota.optional() })
const idInput = z.object({ id: z.string().min(1) })
const listFilter = z.object({
  status: z.enum(['ACTIVE', 'SUSPENDED']).optional(),
  search: z.string().max(100).optional()
}).optional().nullable()

function isUniqueViolation (error: unknown): boolean {
  return pgErrorCode(error) === '23505'
}

export function createClientService (deps: Deps) {
  const { database, keyring, cache, clock } = deps
  const db = database.db

  const view = (row: ClientRow): ClientView => {
    const { contactEmailEnc, ...rest } = row
    return { ...rest, contactEmail: keyring.decrypt(contactEmailEnc) }
  }

  async function findVisible (actor: Actor, id: string): Promise<ClientRow> {
    const [row] = await db.select().from(clients).where(eq(clients.id, id)).limit(1)
    if (!row || !canSeeClient(actor, row.id)) throw new NotFoundError(`client ${id} not found`)
    return row
  }

  async function changeStatus (actor: Actor, meta: RequestMeta | undefined, input: unknown, status: ClientStatus, event: Extract<DomainEventType, 'client.suspended' | 'client.reinstated'>): Promise<ClientView> {
    const { id } = parseInput(idInput, input)
    requireAdmin(actor, id)
    const row = await db.transaction(async (tx) => {
      const [updated] = await tx.update(clients).set({ status, updatedAt: clock() }).where(eq(clients.id, id)).returning()
      if (!updated) throw new NotFoundError(`client ${id} not found`)
      await appendAudit(tx, actor, meta, [{ action: event, targetType: 'client', targetId: id, clientId: id, changes: { status } }])
      await writeEvents(tx, [{ type: event, aggregateId: id, clientId: id, payload: { clientId: id, status } }])
      return updated
    })
    deps.eventsWritten()
    await cache.invalidate([clientStatusCache.key(id)])
    return view(row)
  }

  function requireAdmin (actor: Actor, clientId?: string): void {
    // Another client's object is NOT_FOUND for a MANAGER, never FORBIDDEN (no existence oracle).
    if (clientId !== undefined && actor.role === 'MANAGER' && !canSeeClient(actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
    requireRole(actor, ['ADMIN'], 'manage clients')
  }

  return {
    view,

    async create (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<ClientView> {
      const data = parseInput(createInput, input)
      requireAdmin(actor)
      const now = clock()
      const id = newId('cli')
      try {
        const row = await db.transaction(async (tx) => {
          const [inserted] = await tx.insert(clients).values({
            id,
            clientNumber: data.clientNumber,
            name: data.name,
            contactEmailEnc: keyring.encrypt(data.contactEmail),
            quotaPerMinute: data.quotaPerMinute ?? null,
            createdAt: now,
            updatedAt: now
          }).returning()
          await appendAudit(tx, actor, meta, [{ action: 'client.created', targetType: 'client', targetId: id, clientId: id, changes: { clientNumber: data.clientNumber, name: data.name } }])
          await writeEvents(tx, [{ type: 'client.created', aggregateId: id, clientId: id, payload: { clientId: id, clientNumber: data.clientNumber } }])
          return inserted!
        })
        deps.eventsWritten()
        return view(row)
      } catch (error) {
        if (isUniqueViolation(error)) throw new ConflictError(`client number ${data.clientNumber} already exists`)
        throw error
      }
    },

    async update (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<ClientView> {
      const data = parseInput(updateInput, input)
      // A MANAGER keeps its own client's record current (name, contact email); its quota and status
      // are the vendor's to set. Another client's record stays NOT_FOUND (requireAdmin's rule).
      const ownRecord = actor.role === 'MANAGER' && canSeeClient(actor, data.id)
      if (!ownRecord) requireAdmin(actor, data.id)
      else if (data.quotaPerMinute !== undefined) throw new AuthorizationError('a MANAGER may change its client\'s name and contact email, not its quota')
      const changes: Partial<typeof clients.$inferInsert> = {}
      if (data.name !== undefined) changes.name = data.name
      if (data.contactEmail !== undefined) changes.contactEmailEnc = keyring.encrypt(data.contactEmail)
      if (data.quotaPerMinute !== undefined) changes.quotaPerMinute = data.quotaPerMinute
      const row = await db.transaction(async (tx) => {
        const [updated] = await tx.update(clients).set({ ...changes, updatedAt: clock() }).where(eq(clients.id, data.id)).returning()
        if (!updated) throw new NotFoundError(`client ${data.id} not found`)
        // The audit records which fields changed, never the (encrypted) email itself.
        const audited = { ...(data.name !== undefined ? { name: data.name } : {}), ...(data.quotaPerMinute !== undefined ? { quotaPerMinute: data.quotaPerMinute } : {}), ...(data.contactEmail !== undefined ? { contactEmail: 'changed' } : {}) }
        await appendAudit(tx, actor, meta, [{ action: 'client.updated', targetType: 'client', targetId: data.id, clientId: data.id, changes: audited }])
        await writeEvents(tx, [{ type: 'client.updated', aggregateId: data.id, clientId: data.id, payload: { clientId: data.id, fields: Object.keys(audited) } }])
        return updated
      })
      deps.eventsWritten()
      await cache.invalidate([clientStatusCache.key(data.id)])
      return view(row)
    },

    suspend: (actor: Actor, meta: RequestMeta | undefined, input: unknown) => changeStatus(actor, meta, input, 'SUSPENDED', 'client.suspended'),
    reinstate: (actor: Actor, meta: RequestMeta | undefined, input: unknown) => changeStatus(actor, meta, input, 'ACTIVE', 'client.reinstated'),

    async get (actor: Actor, id: string): Promise<ClientView> {
      return view(await findVisible(actor, id))
    },

    /** Batch load for DataLoader: rows in the order of ids, null where not visible. */
    async loadMany (actor: Actor, ids: readonly string[]): Promise<Array<ClientView | null>> {
      const rows = await db.select().from(clients).where(inArray(clients.id, [...ids]))
      const byId = new Map(rows.map((r) => [r.id, r]))
      return ids.map((id) => {
        const row = byId.get(id)
        return row && canSeeClient(actor, id) ? view(row) : null
      })
    },

    async list (actor: Actor, args: PageArgs, filterInput: unknown): Promise<Page<ClientView>> {
      const filter = parseInput(listFilter, filterInput)
      const size = pageSize(args.first)
      const after = decodeCursor(args.after)
      const where: SQL[] = []
      const scope = clientScope(actor)
      if (scope !== null) where.push(eq(clients.id, scope))
      if (filter?.status) where.push(eq(clients.status, filter.status))
      if (filter?.search) where.push(ilike(clients.name, `%${filter.search.replace(/[%_\\]/g, '\\$&')}%`))
      if (after) where.push(gt(clients.id, after))
      const rows = await database.readDb.select().from(clients).where(and(...where)).orderBy(asc(clients.id)).limit(size + 1)
      const page = toPage(rows, size)
      return { items: page.items.map(view), hasNextPage: page.hasNextPage }
    }
  }
}

export type ClientService = ReturnType<typeof createClientService>
