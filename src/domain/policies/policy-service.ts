// Policies: vendor-wide licensing templates. ADMIN writes, every authenticated role reads. A
// change reaches every serial of the policy: inherited limits and expiries are rewritten in the
// same transaction, and the cached terms are invalidated on every instance through the bus.
import { and, asc, eq, gt, sql } from 'drizzle-orm'
import { z } from 'zod'
import { devices, policies, serials } from '../../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { writeEvents } from '../../events/domain-events.ts'
import { requireRole, type Actor, type RequestMeta } from '../../kernel/access.ts'
import type { Deps } from '../deps.ts'
import { NotFoundError } from '../../kernel/errors.ts'
import { newId } from '../../kernel/ids.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../../kernel/pagination.ts'
import { parseInput } from '../../kernel/input.ts'
import { readThrough } from '../../infra/cache.ts'
import { policyTermsCache, serialStateCache, type PolicyTerms } from '../cached-state.ts'
import { entitlementsSchema } from './policy-rules.ts'

export type PolicyRow = typeof policies.$inferSelect
export type PolicyView = PolicyRow

const fields = {
  name: z.string().trim().min(1).max(100),
  maxDevices: z.number().int().min(1).max(100_000),
  durationDays: z.number().int().min(1).max(36_500).nullable(),
  floating: z.boolean(),
  heartbeatSeconds: z.number().int().min(5).max(86_400),
  heartbeatGraceSeconds: z.number().int().min(0).max(86_400),
  maxActivationsPerDay: z.number().int().min(1).max(1_000_000).nullable(),
  offlineTtlDays: z.number().int().min(1).max(365).nullable(),
  entitlements: entitlementsSchema
}
/** The API's rules for each stored field; import (domain/operations) applies them to imported rows too. */
export const POLICY_FIELDS = fields
const createInput = z.object({
  name: fields.name,
  maxDevices: fields.maxDevices,
  durationDays: fields.durationDays.optional(),
  floating: fields.floating.nullish(),
  heartbeatSeconds: fields.heartbeatSeconds.nullish(),
  heartbeatGraceSeconds: fields.heartbeatGraceSeconds.nullish(),
  maxActivationsPerDay: fields.maxActivationsPerDay.optional(),
  offlineTtlDays: fields.offlineTtlDays.optional(),
  entitlements: fields.entitlements.nullish()
})
// null clears the nullable settings; absent leaves a field as it is.
const updateInput = z.object({
  id: z.string().min(1).max(64),
  name: fields.name.nullish(),
  maxDevices: fields.maxDevices.nullish(),
  durationDays: fields.durationDays.optional(),
  floating: fields.floating.nullish(),
  heartbeatSeconds: fields.heartbeatSeconds.nullish(),
  heartbeatGraceSeconds: fields.heartbeatGraceSeconds.nullish(),
  maxActivationsPerDay: fields.maxActivationsPerDay.optional(),
  offlineTtlDays: fields.offlineTtlDays.optional(),
  entitlements: fields.entitlements.nullish()
})

export const termsOf = (row: PolicyRow): PolicyTerms => ({
  id: row.id,
  floating: row.floating,
  heartbeatSeconds: row.heartbeatSeconds,
  heartbeatGraceSeconds: row.heartbeatGraceSeconds,
  maxActivationsPerDay: row.maxActivationsPerDay,
  offlineTtlDays: row.offlineTtlDays,
  entitlements: row.entitlements
})

/** The terms of one policy through the caches (an L1 hit without a promise); undefined when it does not exist. */
export function loadPolicyTerms (deps: Pick<Deps, 'cache' | 'database'>, policyId: string): PolicyTerms | Promise<PolicyTerms | undefined> {
  return readThrough(deps.cache, policyTermsCache, [policyId], async () => {
    const [row] = await deps.database.lookupDb.select().from(policies).where(eq(policies.id, policyId)).limit(1)
    return row ? termsOf(row) : undefined
  })
}

export function createPolicyService (deps: Deps) {
  const { database, cache, clock } = deps
  const db = database.db

  return {
    terms: (policyId: string) => loadPolicyTerms(deps, policyId),

    async create (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<PolicyView> {
      const data = parseInput(createInput, input)
      requireRole(actor, ['ADMIN'], 'change policies')
      const now = clock()
      const row = await db.transaction(async (tx) => {
        const [inserted] = await tx.insert(policies).values({
          id: newId('pol'),
          name: data.name,
          maxDevices: data.maxDevices,
          durationDays: data.durationDays ?? null,
          floating: data.floating ?? false,
          heartbeatSeconds: data.heartbeatSeconds ?? 600,
          heartbeatGraceSeconds: data.heartbeatGraceSeconds ?? 60,
          maxActivationsPerDay: data.maxActivationsPerDay ?? null,
          offlineTtlDays: data.offlineTtlDays ?? null,
          entitlements: data.entitlements ?? [],
          createdAt: now,
          updatedAt: now
        }).returning()
        const changes = { ...data }
        await appendAudit(tx, actor, meta, [{ action: 'policy.created', targetType: 'policy', targetId: inserted!.id, clientId: null, changes }])
        await writeEvents(tx, [{ type: 'policy.created', aggregateId: inserted!.id, clientId: null, payload: { policyId: inserted!.id, ...changes } }])
        return inserted!
      })
      deps.eventsWritten()
      return row
    },

    async update (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<PolicyView> {
      const data = parseInput(updateInput, input)
      requireRole(actor, ['ADMIN'], 'change policies')
      const { id, ...rest } = data
      // Only the fields the caller sent; null on a non-nullable field means "leave it".
      const changes = Object.fromEntries(Object.entries(rest).filter(([k, v]) => v !== undefined && (v !== null || k === 'durationDays' || k === 'maxActivationsPerDay' || k === 'offlineTtlDays'))) as Partial<PolicyRow>
      const now = clock()
      const result = await db.transaction(async (tx) => {
        const [current] = await tx.select().from(policies).where(eq(policies.id, id)).for('update').limit(1)
        if (!current) throw new NotFoundError(`policy ${id} not found`)
        const [updated] = await tx.update(policies).set({ ...changes, updatedAt: now }).where(eq(policies.id, id)).returning()
        let touched = false
        if (changes.maxDevices !== undefined && changes.maxDevices !== current.maxDevices) {
          await tx.update(serials).set({ maxDevices: changes.maxDevices, updatedAt: now })
            .where(and(eq(serials.policyId, id), eq(serials.inheritsMaxDevices, true)))
          touched = true
        }
        if (changes.durationDays !== undefined && changes.durationDays !== current.durationDays) {
          const days = changes.durationDays
          // A new expiry is a new story: its expiring/expired notices may be sent again.
          await tx.update(serials).set({
            expiresAt: days === null ? null : sql`${serials.createdAt} + make_interval(days => ${days}::int)`,
            expiringNotifiedAt: null,
            expiredNotifiedAt: null,
            updatedAt: now
          }).where(and(eq(serials.policyId, id), eq(serials.inheritsDuration, true)))
          touched = true
        }
        if (changes.floating !== undefined && changes.floating !== current.floating) {
          // Node-locked slots never lapse; slots that become floating get a first lease from now.
          const until = changes.floating ? new Date(now.getTime() + (updated!.heartbeatSeconds + updated!.heartbeatGraceSeconds) * 1000) : null
          await tx.update(devices).set({ leaseExpiresAt: until })
            .where(and(eq(devices.active, true), sql`${devices.serialId} in (select ${serials.id} from ${serials} where ${serials.policyId} = ${id})`))
          touched = true
        }
        await appendAudit(tx, actor, meta, [{ action: 'policy.updated', targetType: 'policy', targetId: id, clientId: null, changes }])
        await writeEvents(tx, [{ type: 'policy.updated', aggregateId: id, clientId: null, payload: { policyId: id, ...changes } }])
        return { row: updated!, touched }
      })
      deps.eventsWritten()
      const keys = [policyTermsCache.key(id)]
      if (result.touched) {
        const rows = await db.select({ numberHash: serials.numberHash }).from(serials).where(eq(serials.policyId, id))
        keys.push(...rows.map((r) => serialStateCache.key(r.numberHash)))
      }
      // One bus message per chunk keeps each message small; every instance drops its L1 copies.
      for (let i = 0; i < keys.length; i += 1000) await cache.invalidate(keys.slice(i, i + 1000))
      return result.row
    },

    async get (_actor: Actor, id: string): Promise<PolicyView> {
      const [row] = await db.select().from(policies).where(eq(policies.id, id)).limit(1)
      if (!row) throw new NotFoundError(`policy ${id} not found`)
      return row
    },

    async list (_actor: Actor, args: PageArgs): Promise<Page<PolicyView>> {
      const size = pageSize(args.first)
      const after = decodeCursor(args.after)
      const rows = await database.readDb.select().from(policies).where(after ? gt(policies.id, after) : undefined).orderBy(asc(policies.id)).limit(size + 1)
      return toPage(rows, size)
    },

    /** Many policies by id (for Serial.policy), in one query. */
    async byIds (ids: readonly string[]): Promise<PolicyView[]> {
      if (ids.length === 0) return []
      return db.select().from(policies).where(sql`${policies.id} = any(${sql.param([...ids])}::text[])`)
    }
  }
}

export type PolicyService = ReturnType<typeof createPolicyService>
