// Serial lifecycle use cases: issue (optionally under a policy), change state, reveal, look up.
// The validation hot path lives in src/validation/.
import { and, asc, eq, gt, isNull, lte, or, sql, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import { clients, policies, serials } from '../../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { writeEvents, type DomainEvent, type DomainEventType } from '../../events/domain-events.ts'
import { canSeeClient, clientScope, requireWriter, type Actor, type RequestMeta } from '../../kernel/access.ts'
import { lookupHash } from '../../infra/crypto.ts'
import type { Deps } from '../deps.ts'
import { ConflictError, FeatureDisabledError, NotFoundError, ValidationError } from '../../kernel/errors.ts'
import type { Executor } from '../../infra/database.ts'
import { newId } from '../../kernel/ids.ts'
import { withIdempotency } from '../../infra/idempotency.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../../kernel/pagination.ts'
import { dateInput, idempotencyKeyInput, jsonObjectInput, parseInput } from '../../kernel/input.ts'
import { policyExpiry } from '../policies/policy-rules.ts'
import { formatSerialNumber, generateSerialNumber, maskSerialNumber, normaliseSerialNumber } from './serial-number.ts'
import type { PolicyRow } from '../policies/policy-service.ts'
import { displayStatus } from './serial-rules.ts'
import type { SerialRow } from './serial-state.ts'
import { serialStateCache } from '../cached-state.ts'

export interface SerialView {
  id: string
  clientId: string
  maskedNumber: string
  /** The device limit. */
  maxDevices: number
  activeDevices: number
  expiresAt: Date | null
  isDemo: boolean
  metadata: Record<string, unknown>
  status: 'ACTIVE' | 'SUSPENDED' | 'REVOKED' | 'EXPIRED'
  revokedAt: Date | null
  revokeReason: string | null
  batchId: string | null
  /** null = no policy */
  policyId: string | null
  createdAt: Date
  updatedAt: Date
}

export const DEMO_DAYS = 14
const DAY_MS = 86_400_000
const metadataSchema = jsonObjectInput(4096)
const maxUsage = z.number().int().min(1).max(100_000)
const idempotencyKey = idempotencyKeyInput.optional().nullable()

/**
 * maxDevices, or its deprecated GraphQL alias maxUsageCount (kept for a release); both given must
 * agree. The parsed input carries maxDevices only.
 */
function oneDeviceLimit<T extends { maxDevices?: number | null, maxUsageCount?: number | null }> ({ maxUsageCount, ...rest }: T, ctx: z.RefinementCtx): Omit<T, 'maxUsageCount'> {
  if (maxUsageCount != null && rest.maxDevices != null && maxUsageCount !== rest.maxDevices) {
    ctx.addIssue({ code: 'custom', path: ['maxDevices'], message: 'maxDevices and its deprecated alias maxUsageCount differ' })
    return z.NEVER
  }
  return { ...rest, maxDevices: rest.maxDevices ?? maxUsageCount }
}

const createFields = {
  clientId: z.string().min(1).max(64),
  maxDevices: maxUsage.optional().nullable(),
  maxUsageCount: maxUsage.optional().nullable(),
  expiresAt: dateInput.optional().nullable(),
  isDemo: z.boolean().optional().nullable(),
  metadata: metadataSchema.optional().nullable(),
  policyId: z.string().min(1).max(64).optional().nullable()
}
const createInput = z.object(createFields).transform(oneDeviceLimit)
const createManyInput = z.object({ ...createFields, count: z.number().int().min(1).max(10_000), idempotencyKey }).transform(oneDeviceLimit)
const updateInput = z.object({
  id: z.string().min(1).max(64),
  maxDevices: maxUsage.optional(),
  maxUsageCount: maxUsage.optional(),
  expiresAt: dateInput.optional().nullable(),
  metadata: metadataSchema.optional()
}).transform(oneDeviceLimit)
const idInput = z.object({ id: z.string().min(1).max(64) })
const revokeInput = z.object({ id: z.string().min(1).max(64), reason: z.string().trim().min(1).max(500) })
/** The API's rules for each stored field; import (domain/operations) applies them to imported rows too. */
export const SERIAL_FIELDS = { maxDevices: maxUsage, metadata: metadataSchema, revokeReason: revokeInput.shape.reason }
const listFilter = z.object({
  clientId: z.string().max(64).optional().nullable(),
  status: z.enum(['ACTIVE', 'SUSPENDED', 'REVOKED', 'EXPIRED']).optional().nullable(),
  isDemo: z.boolean().optional().nullable(),
  expiresBefore: dateInput.optional().nullable()
}).optional().nullable()

const byNumberInput = z.object({ serialNumber: z.string().max(64) })

export interface IssuedSerial { serial: SerialView, serialNumber: string }

/**
 * Inserts serials that share client, limits, expiry, metadata and batch, with one
 * `serial.created` outbox event each, in one statement of fixed text (the per-serial columns
 * travel as arrays): 10,000 serials are one round trip, not twenty. Metadata travels as JSON text
 * cast `::text::jsonb`: a string parameter cast straight to jsonb is typed jsonb, which postgres.js
 * JSON-encodes once more (a jsonb *string*, `jsonb_typeof` = 'string'); PGlite does not.
 */
async function insertSerials (tx: Executor, rows: Array<typeof serials.$inferInsert>): Promise<SerialRow[]> {
  const first = rows[0]!
  const column = (pick: (r: typeof serials.$inferInsert) => string) => sql.param(rows.map(pick))
  await tx.execute(sql`
    with s as (
      insert into serials (id, client_id, number_hash, number_enc, number_tail, max_usage_count, expires_at, is_demo, metadata, batch_id, policy_id, inherits_max_devices, inherits_duration, created_at, updated_at)
      select u.id, ${first.clientId}, u.hash, u.enc, u.tail, ${first.maxDevices ?? 1}::int, ${first.expiresAt?.toISOString() ?? null}::timestamptz,
        ${first.isDemo ?? false}::boolean, ${JSON.stringify(first.metadata ?? {})}::text::jsonb, ${first.batchId ?? null}::text,
        ${first.policyId ?? null}::text, ${first.inheritsMaxDevices ?? false}::boolean, ${first.inheritsDuration ?? false}::boolean,
        ${first.createdAt!.toISOString()}::timestamptz, ${first.createdAt!.toISOString()}::timestamptz
      from unnest(${column((r) => r.id!)}::text[], ${column((r) => r.numberHash)}::text[], ${column((r) => r.numberEnc)}::text[], ${column((r) => r.numberTail)}::text[]) as u(id, hash, enc, tail)
      returning id, client_id, batch_id
    )
    insert into outbox (type, aggregate_id, client_id, payload)
    select 'serial.created', id, client_id, jsonb_build_object('serialId', id, 'clientId', client_id, 'batchId', batch_id) from s order by id`)
  return rows.map((r) => ({
    id: r.id!,
    clientId: r.clientId,
    numberHash: r.numberHash,
    numberEnc: r.numberEnc,
    numberTail: r.numberTail,
    maxDevices: r.maxDevices ?? 1,
    activeDevices: 0,
    expiresAt: r.expiresAt ?? null,
    isDemo: r.isDemo ?? false,
    metadata: r.metadata ?? {},
    status: 'ACTIVE',
    revokedAt: null,
    revokeReason: null,
    batchId: r.batchId ?? null,
    policyId: r.policyId ?? null,
    inheritsMaxDevices: r.inheritsMaxDevices ?? false,
    inheritsDuration: r.inheritsDuration ?? false,
    expiringNotifiedAt: null,
    expiredNotifiedAt: null,
    limitReachedAt: null,
    createdAt: r.createdAt!,
    updatedAt: r.createdAt!
  }))
}

export function createSerialService (deps: Deps) {
  const { database, keyring, cache, clock, config } = deps
  const db = database.db

  const view = (row: SerialRow): SerialView => ({
    id: row.id,
    clientId: row.clientId,
    maskedNumber: maskSerialNumber(row.numberTail),
    maxDevices: row.maxDevices,
    activeDevices: row.activeDevices,
    expiresAt: row.expiresAt,
    isDemo: row.isDemo,
    metadata: row.metadata,
    status: displayStatus(row.status, row.expiresAt, clock().getTime()),
    revokedAt: row.revokedAt,
    revokeReason: row.revokeReason,
    batchId: row.batchId,
    policyId: row.policyId,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt
  })

  async function findVisible (actor: Actor, id: string): Promise<SerialRow> {
    const [row] = await db.select().from(serials).where(eq(serials.id, id)).limit(1)
    if (!row || !canSeeClient(actor, row.clientId)) throw new NotFoundError(`serial ${id} not found`)
    return row
  }

  async function requireClient (actor: Actor, clientId: string) {
    const [client] = await db.select({ id: clients.id, status: clients.status }).from(clients).where(eq(clients.id, clientId)).limit(1)
    if (!client || !canSeeClient(actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
    return client
  }

  async function requirePolicy (policyId: string | null | undefined, exec: Executor = db): Promise<PolicyRow | null> {
    if (!policyId) return null
    const [policy] = await exec.select().from(policies).where(eq(policies.id, policyId)).limit(1)
    if (!policy) throw new NotFoundError(`policy ${policyId} not found`)
    return policy
  }

  /**
   * Limits and expiry of new serials: what the input sets, else the policy's (then followed when
   * the policy changes), else the defaults (one device; demo serials DEMO_DAYS, others never).
   */
  function buildRows (data: z.output<typeof createInput>, count: number, batchId: string | null, policy: PolicyRow | null) {
    const now = clock()
    const inheritsMaxDevices = policy !== null && data.maxDevices == null
    const inheritsDuration = policy !== null && data.expiresAt == null && !(data.isDemo && policy.durationDays === null)
    const demoExpiry = data.isDemo ? new Date(now.getTime() + DEMO_DAYS * DAY_MS) : null
    const expiresAt = data.expiresAt ?? (inheritsDuration ? policyExpiry(now, policy!.durationDays) : demoExpiry)
    const maxDevices = data.maxDevices ?? policy?.maxDevices ?? 1
    const issued: Array<{ row: typeof serials.$inferInsert, number: string }> = []
    for (let i = 0; i < count; i++) {
      const number = generateSerialNumber()
      issued.push({
        number,
        row: {
          id: newId('ser'),
          clientId: data.clientId,
          numberHash: lookupHash(config.pepper, number),
          numberEnc: keyring.encrypt(number),
          numberTail: number.slice(20),
          maxDevices,
          expiresAt,
          isDemo: data.isDemo ?? false,
          metadata: data.metadata ?? {},
          batchId,
          policyId: policy?.id ?? null,
          inheritsMaxDevices,
          inheritsDuration,
          createdAt: now,
          updatedAt: now
        }
      })
    }
    return issued
  }

  function checkExpiry (expiresAt: Date | null | undefined): void {
    if (expiresAt && expiresAt.getTime() <= clock().getTime()) {
      throw new ValidationError('Validation failed', [{ field: 'expiresAt', message: 'must be in the future' }])
    }
  }

  /** Inserts serials, their events and one audit entry; returns the issued numbers once. */
  async function issue (actor: Actor, meta: RequestMeta | undefined, data: z.output<typeof createInput>, count: number, batchId: string | null, exec: Executor = db): Promise<IssuedSerial[]> {
    // Through exec: inside an idempotent call's transaction, a read on another connection would
    // wait for a free one while holding this one (PGlite has one connection: it would wait forever).
    const issued = buildRows(data, count, batchId, await requirePolicy(data.policyId, exec))
    const rows = await exec.transaction(async (tx) => {
      const inserted = await insertSerials(tx, issued.map((s) => s.row))
      await appendAudit(tx, actor, meta, [batchId
        ? { action: 'serial.created', targetType: 'batch', targetId: batchId, clientId: data.clientId, changes: { count, maxDevices: issued[0]!.row.maxDevices, isDemo: data.isDemo ?? false, policyId: data.policyId ?? null } }
        : { action: 'serial.created', targetType: 'serial', targetId: inserted[0]!.id, clientId: data.clientId, changes: { maxDevices: issued[0]!.row.maxDevices, isDemo: data.isDemo ?? false, policyId: data.policyId ?? null } }])
      return inserted
    })
    deps.eventsWritten()
    return rows.map((row, i) => ({ serial: view(row), serialNumber: formatSerialNumber(issued[i]!.number) }))
  }

  async function changeState (actor: Actor, meta: RequestMeta | undefined, id: string, event: DomainEventType, mutate: (row: SerialRow) => Partial<typeof serials.$inferInsert>, changes: Record<string, unknown>): Promise<SerialView> {
    requireWriter(actor, 'change serials')
    const row = await db.transaction(async (tx) => {
      const [current] = await tx.select().from(serials).where(eq(serials.id, id)).for('update').limit(1)
      if (!current || !canSeeClient(actor, current.clientId)) throw new NotFoundError(`serial ${id} not found`)
      if (current.status === 'REVOKED') throw new ConflictError(`serial ${id} is revoked; revocation is final`)
      const [updated] = await tx.update(serials).set({ ...mutate(current), updatedAt: clock() }).where(eq(serials.id, id)).returning()
      await appendAudit(tx, actor, meta, [{ action: event, targetType: 'serial', targetId: id, clientId: current.clientId, changes }])
      await writeEvents(tx, [{ type: event, aggregateId: id, clientId: current.clientId, payload: { serialId: id, clientId: current.clientId, ...changes } } as DomainEvent]) // changeState's (event, changes) are not typed as a pair yet
      return updated!
    })
    deps.eventsWritten()
    await cache.invalidate([serialStateCache.key(row.numberHash)])
    return view(row)
  }

  const service = {
    view,

    async create (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<IssuedSerial> {
      const data = parseInput(createInput, input)
      requireWriter(actor, 'change serials')
      checkExpiry(data.expiresAt)
      await requireClient(actor, data.clientId)
      const [issued] = await issue(actor, meta, data, 1, null)
      return issued!
    },

    async createMany (actor: Actor, meta: RequestMeta | undefined, input: unknown, headerKey?: string): Promise<{ count: number, serials: IssuedSerial[] }> {
      if (!config.features.bulkOperations) throw new FeatureDisabledError('FEATURE_BULK_OPERATIONS')
      const data = parseInput(createManyInput, input)
      requireWriter(actor, 'change serials')
      checkExpiry(data.expiresAt)
      await requireClient(actor, data.clientId)
      const key = headerKey ?? data.idempotencyKey ?? undefined
      const run = async (exec?: Executor) => {
        const issued = await issue(actor, meta, data, data.count, newId('bat'), exec)
        return { count: issued.length, serials: issued }
      }
      if (!key) return run()
      // The key is claimed before any serial is made; the batch is written in the transaction that
      // stores the answer. The stored answer holds the numbers only as long as the key lives (24 h), encrypted.
      return withIdempotency(deps, `bulk:${data.clientId}`, key, { ...data, idempotencyKey: undefined }, {
        write: (tx) => run(tx),
        codec: {
          encode: (value) => ({ enc: keyring.encrypt(JSON.stringify(value)) }),
          decode: (stored) => reviveIssued(JSON.parse(keyring.decrypt((stored as { enc: string }).enc)))
        }
      })
    },

    async update (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<SerialView> {
      const data = parseInput(updateInput, input)
      checkExpiry(data.expiresAt)
      const changes: Record<string, unknown> = {}
      if (data.maxDevices !== undefined) { changes.maxDevices = data.maxDevices; changes.maxUsageCount = data.maxDevices }
      if (data.expiresAt !== undefined) changes.expiresAt = data.expiresAt
      if (data.metadata !== undefined) changes.metadata = data.metadata
      // A value set here is the serial's own from now on: a later policy change leaves it alone.
      // A new expiry also gets its own expiring/expired notices.
      const own: Partial<typeof serials.$inferInsert> = {
        ...(data.maxDevices !== undefined ? { inheritsMaxDevices: false } : {}),
        ...(data.expiresAt !== undefined ? { inheritsDuration: false, expiringNotifiedAt: null, expiredNotifiedAt: null } : {})
      }
      return changeState(actor, meta, data.id, 'serial.updated', () => ({ ...changes, ...own }), changes)
    },

    async suspend (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<SerialView> {
      const { id } = parseInput(idInput, input)
      return changeState(actor, meta, id, 'serial.suspended', () => ({ status: 'SUSPENDED' }), { status: 'SUSPENDED' })
    },

    async reinstate (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<SerialView> {
      const { id } = parseInput(idInput, input)
      return changeState(actor, meta, id, 'serial.reinstated', () => ({ status: 'ACTIVE' }), { status: 'ACTIVE' })
    },

    async revoke (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<SerialView> {
      const { id, reason } = parseInput(revokeInput, input)
      const now = clock()
      return changeState(actor, meta, id, 'serial.revoked', () => ({ status: 'REVOKED', revokedAt: now, revokeReason: reason }), { status: 'REVOKED', reason })
    },

    async reveal (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<string> {
      const { id } = parseInput(idInput, input)
      requireWriter(actor, 'change serials')
      return db.transaction(async (tx) => {
        const [row] = await tx.select().from(serials).where(eq(serials.id, id)).limit(1)
        if (!row || !canSeeClient(actor, row.clientId)) throw new NotFoundError(`serial ${id} not found`)
        await appendAudit(tx, actor, meta, [{ action: 'serial.revealed', targetType: 'serial', targetId: id, clientId: row.clientId }])
        return formatSerialNumber(keyring.decrypt(row.numberEnc))
      })
    },

    /** Support look-up by the full number: same tenant rules as `get`, and every call audited. */
    async getByNumber (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<SerialView> {
      const { serialNumber } = parseInput(byNumberInput, input)
      const normalised = normaliseSerialNumber(serialNumber)
      if (!normalised) throw new ValidationError('Validation failed', [{ field: 'serialNumber', message: 'Invalid format' }])
      return db.transaction(async (tx) => {
        const [row] = await tx.select().from(serials).where(eq(serials.numberHash, lookupHash(config.pepper, normalised))).limit(1)
        if (!row || !canSeeClient(actor, row.clientId)) throw new NotFoundError('serial not found')
        await appendAudit(tx, actor, meta, [{ action: 'serial.looked_up', targetType: 'serial', targetId: row.id, clientId: row.clientId }])
        return view(row)
      })
    },

    async get (actor: Actor, id: string): Promise<SerialView> {
      return view(await findVisible(actor, id))
    },

    async list (actor: Actor, args: PageArgs, filterInput: unknown): Promise<Page<SerialView>> {
      const filter = parseInput(listFilter, filterInput)
      const size = pageSize(args.first)
      const after = decodeCursor(args.after)
      const now = clock()
      const where: SQL[] = []
      const scope = clientScope(actor)
      if (scope !== null) where.push(eq(serials.clientId, scope))
      if (filter?.clientId) where.push(eq(serials.clientId, filter.clientId))
      if (filter?.isDemo != null) where.push(eq(serials.isDemo, filter.isDemo))
      if (filter?.expiresBefore) where.push(lte(serials.expiresAt, filter.expiresBefore))
      switch (filter?.status) {
        case 'REVOKED': case 'SUSPENDED': where.push(eq(serials.status, filter.status)); break
        case 'EXPIRED': where.push(eq(serials.status, 'ACTIVE'), lte(serials.expiresAt, now)); break
        case 'ACTIVE': where.push(eq(serials.status, 'ACTIVE'), or(isNull(serials.expiresAt), gt(serials.expiresAt, now))!); break
      }
      if (after) where.push(gt(serials.id, after))
      const rows = await database.readDb.select().from(serials).where(and(...where)).orderBy(asc(serials.id)).limit(size + 1)
      const page = toPage(rows, size)
      return { items: page.items.map(view), hasNextPage: page.hasNextPage }
    }
  }
  return service
}

function reviveIssued (value: { count: number, serials: IssuedSerial[] }) {
  for (const s of value.serials) {
    const v = s.serial as unknown as Record<string, unknown>
    for (const k of ['expiresAt', 'revokedAt', 'createdAt', 'updatedAt']) if (typeof v[k] === 'string') v[k] = new Date(v[k] as string)
  }
  return value
}

/** The serial use cases plus the validation entry point (composed in services.ts). */
export type SerialService = ReturnType<typeof createSerialService>
