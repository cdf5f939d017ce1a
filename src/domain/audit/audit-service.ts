import { and, desc, eq, gte, inArray, lt, lte, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import { auditLog } from '../../../schema/index.ts'
import { canSeeClientOf, clientScope, requireRole, type Actor } from '../../kernel/access.ts'
import type { Deps } from '../deps.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../../kernel/pagination.ts'
import { dateInput, parseInput } from '../../kernel/input.ts'
import { verifyAuditChain, type AuditVerification } from './audit-log.ts'

export type AuditEntry = typeof auditLog.$inferSelect

const filterSchema = z.object({
  actorId: z.string().max(100).optional().nullable(),
  action: z.string().max(100).optional().nullable(),
  targetId: z.string().max(100).optional().nullable(),
  since: dateInput.optional().nullable(),
  until: dateInput.optional().nullable()
}).optional().nullable()

export function createAuditService (deps: Deps) {
  const { database } = deps
  return {
    /** Newest first; the cursor is the chain position (seq). */
    async list (actor: Actor, args: PageArgs, filterInput: unknown): Promise<Page<AuditEntry>> {
      const filter = parseInput(filterSchema, filterInput)
      const size = pageSize(args.first)
      const after = decodeCursor(args.after)
      const where: SQL[] = []
      const scope = clientScope(actor)
      if (scope !== null) where.push(eq(auditLog.clientId, scope))
      if (filter?.actorId) where.push(eq(auditLog.actorId, filter.actorId))
      if (filter?.action) where.push(eq(auditLog.action, filter.action))
      if (filter?.targetId) where.push(eq(auditLog.targetId, filter.targetId))
      if (filter?.since) where.push(gte(auditLog.createdAt, filter.since))
      if (filter?.until) where.push(lte(auditLog.createdAt, filter.until))
      if (after) where.push(lt(auditLog.seq, Number(after)))
      const rows = await database.readDb.select().from(auditLog).where(and(...where)).orderBy(desc(auditLog.seq)).limit(size + 1)
      return toPage(rows, size)
    },

    async verify (actor: Actor): Promise<AuditVerification> {
      requireRole(actor, ['ADMIN', 'AUDITOR'], 'verify the audit log')
      return verifyAuditChain(database.db)
    },

    /** Batch load by id (GraphQL node/nodes): in the order of ids, null where absent or not visible to the actor. */
    async loadMany (actor: Actor, ids: readonly string[]): Promise<Array<AuditEntry | null>> {
      // By id, on the primary: an id just returned by a write must resolve (no replica lag).
      const rows = await database.db.select().from(auditLog).where(inArray(auditLog.id, [...ids]))
      const byId = new Map(rows.map((r) => [r.id, r]))
      // As in list: a MANAGER sees its own client's entries, ADMIN and AUDITOR every entry.
      return ids.map((id) => {
        const row = byId.get(id)
        return row && canSeeClientOf(actor, row.clientId) ? row : null
      })
    }
  }
}

export type AuditService = ReturnType<typeof createAuditService>
