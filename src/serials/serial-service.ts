// Serial use cases: issue, change state, and the validation hot path (L1 → L2 → PostgreSQL).
import { and, asc, eq, gt, isNull, lte, or, sql, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import { clients, devices, serials } from '../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { clientCacheKey } from '../clients/client-service.ts'
import { writeEvents, type DomainEvent, type DomainEventType } from '../events/domain-events.ts'
import { canSeeClient, type Actor, type RequestMeta } from '../platform/auth.ts'
import { lookupHash } from '../platform/crypto.ts'
import type { Deps } from '../platform/deps.ts'
import { AuthorizationError, ConflictError, FeatureDisabledError, NotFoundError, ValidationError } from '../platform/errors.ts'
import type { Executor } from '../platform/database.ts'
import { newId } from '../platform/ids.ts'
import { withIdempotency } from '../platform/idempotency.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../platform/pagination.ts'
import { canonicalJson } from '../platform/signing.ts'
import { parseInput } from '../platform/validation.ts'
import type { DeviceService } from '../devices/device-service.ts'
import { formatSerialNumber, generateSerialNumber, maskSerialNumber, normaliseSerialNumber } from './serial-number.ts'
import { checkSerial, displayStatus, MESSAGES, type SerialState, type ValidationCode } from './serial-rules.ts'
import type { ValidationRecorder } from './validation-recorder.ts'

export type SerialRow = typeof serials.$inferSelect

export interface SerialView {
  id: string
  clientId: string
  maskedNumber: string
  maxUsageCount: number
  activeDevices: number
  expiresAt: Date | null
  isDemo: boolean
  metadata: Record<string, unknown>
  status: 'ACTIVE' | 'SUSPENDED' | 'REVOKED' | 'EXPIRED'
  revokedAt: Date | null
  revokeReason: string | null
  batchId: string | null
  createdAt: Date
  updatedAt: Date
}

export interface ValidationResult {
  valid: boolean
  code: ValidationCode
  message: string
  expiresAt: Date | null
  /** Free slots left; null when the serial is unknown. */
  remainingDevices: number | null
  isDemo: boolean | null
  serverTime: Date
  nonce: string | null
  /** base64url signature over the canonical answer (see README); only when a nonce was sent. */
  signature: string | null
}

export interface ValidationOutcome { result: ValidationResult, serial?: SerialState }

export const DEMO_DAYS = 14
const DAY_MS = 86_400_000
/** L2 lifetime of cached serial and device state, in seconds; invalidation usually comes first. */
const CACHE_TTL_S = 300
export const serialCacheKey = (numberHash: string) => `s:${numberHash}`
export const deviceCacheKey = (serialId: string, deviceId: string) => `d:${serialId}:${deviceId}`

const metadataSchema = z.record(z.string(), z.unknown()).refine((m) => Buffer.byteLength(JSON.stringify(m)) <= 4096, 'must be at most 4 KiB as JSON')
const maxUsage = z.number().int().min(1).max(100_000)
const idempotencyKey = z.string().min(1).max(200).optional().nullable()

const createFields = {
  clientId: z.string().min(1).max(64),
  maxUsageCount: maxUsage.optional().nullable(),
  expiresAt: z.coerce.date().optional().nullable(),
  isDemo: z.boolean().optional().nullable(),
  metadata: metadataSchema.optional().nullable()
}
const createInput = z.object(createFields)
const createManyInput = z.object({ ...createFields, count: z.number().int().min(1).max(10_000), idempotencyKey })
const updateInput = z.object({
  id: z.string().min(1).max(64),
  maxUsageCount: maxUsage.optional(),
  expiresAt: z.coerce.date().optional().nullable(),
  metadata: metadataSchema.optional()
})
const idInput = z.object({ id: z.string().min(1).max(64) })
const revokeInput = z.object({ id: z.string().min(1).max(64), reason: z.string().trim().min(1).max(500) })
const listFilter = z.object({
  clientId: z.string().max(64).optional().nullable(),
  status: z.enum(['ACTIVE', 'SUSPENDED', 'REVOKED', 'EXPIRED']).optional().nullable(),
  isDemo: z.boolean().optional().nullable(),
  expiresBefore: z.coerce.date().optional().nullable()
}).optional().nullable()

export const deviceIdSchema = z.string().trim().min(1).max(128).regex(/^[\x20-\x7E]+$/, 'must be printable ASCII')
export const deviceInfoSchema = z.record(z.string(), z.unknown()).refine((m) => Buffer.byteLength(JSON.stringify(m)) <= 2048, 'must be at most 2 KiB as JSON')
const validateInput = z.object({
  serialNumber: z.string().max(64),
  deviceId: deviceIdSchema,
  deviceInfo: deviceInfoSchema.optional().nullable(),
  nonce: z.string().min(1).max(128).optional().nullable()
})

export interface IssuedSerial { serial: SerialView, serialNumber: string }

export function stateOf (row: SerialRow, clientNumber: string): SerialState {
  return {
    id: row.id,
    clientId: row.clientId,
    clientNumber,
    status: row.status as SerialState['status'],
    expiresAt: row.expiresAt ? row.expiresAt.getTime() : null,
    maxUsageCount: row.maxUsageCount,
    activeDevices: row.activeDevices,
    isDemo: row.isDemo
  }
}

/**
 * Inserts serials that share client, limits, expiry, metadata and batch, with one
 * `serial.created` outbox event each, in one statement of fixed text (the per-serial columns
 * travel as arrays): 10,000 serials are one round trip, not twenty.
 */
async function insertSerials (tx: Executor, rows: Array<typeof serials.$inferInsert>): Promise<SerialRow[]> {
  const first = rows[0]!
  const column = (pick: (r: typeof serials.$inferInsert) => string) => sql.param(rows.map(pick))
  await tx.execute(sql`
    with s as (
      insert into serials (id, client_id, number_hash, number_enc, number_tail, max_usage_count, expires_at, is_demo, metadata, batch_id, created_at, updated_at)
      select u.id, ${first.clientId}, u.hash, u.enc, u.tail, ${first.maxUsageCount ?? 1}::int, ${first.expiresAt?.toISOString() ?? null}::timestamptz,
        ${first.isDemo ?? false}::boolean, ${JSON.stringify(first.metadata ?? {})}::jsonb, ${first.batchId ?? null}::text, ${first.createdAt!.toISOString()}::timestamptz, ${first.createdAt!.toISOString()}::timestamptz
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
    maxUsageCount: r.maxUsageCount ?? 1,
    activeDevices: 0,
    expiresAt: r.expiresAt ?? null,
    isDemo: r.isDemo ?? false,
    metadata: r.metadata ?? {},
    status: 'ACTIVE',
    revokedAt: null,
    revokeReason: null,
    batchId: r.batchId ?? null,
    createdAt: r.createdAt!,
    updatedAt: r.createdAt!
  }))
}

export function createSerialService (deps: Deps & { devices: DeviceService, recorder: ValidationRecorder }) {
  const { database, keyring, cache, clock, config, signer, metrics } = deps
  const db = database.db

  const view = (row: SerialRow): SerialView => ({
    id: row.id,
    clientId: row.clientId,
    maskedNumber: maskSerialNumber(row.numberTail),
    maxUsageCount: row.maxUsageCount,
    activeDevices: row.activeDevices,
    expiresAt: row.expiresAt,
    isDemo: row.isDemo,
    metadata: row.metadata,
    status: displayStatus(row.status, row.expiresAt, clock().getTime()),
    revokedAt: row.revokedAt,
    revokeReason: row.revokeReason,
    batchId: row.batchId,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt
  })

  function requireWriter (actor: Actor): void {
    if (actor.role !== 'ADMIN' && actor.role !== 'MANAGER') throw new AuthorizationError('this role may not change serials')
  }

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

  function buildRows (data: z.output<typeof createInput>, count: number, batchId: string | null) {
    const now = clock()
    const expiresAt = data.expiresAt ?? (data.isDemo ? new Date(now.getTime() + DEMO_DAYS * DAY_MS) : null)
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
          maxUsageCount: data.maxUsageCount ?? 1,
          expiresAt,
          isDemo: data.isDemo ?? false,
          metadata: data.metadata ?? {},
          batchId,
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
    const issued = buildRows(data, count, batchId)
    const rows = await exec.transaction(async (tx) => {
      const inserted = await insertSerials(tx, issued.map((s) => s.row))
      await appendAudit(tx, actor, meta, [batchId
        ? { action: 'serial.created', targetType: 'batch', targetId: batchId, clientId: data.clientId, changes: { count, maxUsageCount: data.maxUsageCount ?? 1, isDemo: data.isDemo ?? false } }
        : { action: 'serial.created', targetType: 'serial', targetId: inserted[0]!.id, clientId: data.clientId, changes: { maxUsageCount: data.maxUsageCount ?? 1, isDemo: data.isDemo ?? false } }])
      return inserted
    })
    deps.eventsWritten()
    return rows.map((row, i) => ({ serial: view(row), serialNumber: formatSerialNumber(issued[i]!.number) }))
  }

  async function changeState (actor: Actor, meta: RequestMeta | undefined, id: string, event: DomainEventType, mutate: (row: SerialRow) => Partial<typeof serials.$inferInsert>, changes: Record<string, unknown>): Promise<SerialView> {
    requireWriter(actor)
    const row = await db.transaction(async (tx) => {
      const [current] = await tx.select().from(serials).where(eq(serials.id, id)).for('update').limit(1)
      if (!current || !canSeeClient(actor, current.clientId)) throw new NotFoundError(`serial ${id} not found`)
      if (current.status === 'REVOKED') throw new ConflictError(`serial ${id} is revoked; revocation is final`)
      const [updated] = await tx.update(serials).set({ ...mutate(current), updatedAt: clock() }).where(eq(serials.id, id)).returning()
      await appendAudit(tx, actor, meta, [{ action: event, targetType: 'serial', targetId: id, clientId: current.clientId, changes }])
      await writeEvents(tx, [{ type: event, aggregateId: id, clientId: current.clientId, payload: { serialId: id, clientId: current.clientId, ...changes } }])
      return updated!
    })
    deps.eventsWritten()
    await cache.invalidate([serialCacheKey(row.numberHash)])
    return view(row)
  }

  /**
   * The validation's view of a serial: from the caches, or on a miss one query for the serial,
   * its client's status and whether this device holds a slot (one round trip instead of three).
   */
  async function loadForValidation (numberHash: string, deviceId: string): Promise<{ state?: SerialState, clientStatus?: string, deviceActive?: boolean }> {
    const key = serialCacheKey(numberHash)
    const cached = cache.getLocal<SerialState>(key) ?? await cache.get<SerialState>(key)
    if (cached) return { state: cached, clientStatus: await loadClientStatus(cached.clientId) }
    const [row] = await database.lookupDb.select({ serial: serials, clientNumber: clients.clientNumber, clientStatus: clients.status, deviceActive: devices.active })
      .from(serials).innerJoin(clients, eq(clients.id, serials.clientId))
      .leftJoin(devices, and(eq(devices.serialId, serials.id), eq(devices.deviceId, deviceId)))
      .where(eq(serials.numberHash, numberHash)).limit(1)
    if (!row) return {}
    const state = stateOf(row.serial, row.clientNumber)
    void cache.set(key, state, CACHE_TTL_S)
    void cache.set(clientCacheKey(state.clientId), { status: row.clientStatus }, CACHE_TTL_S)
    return { state, clientStatus: row.clientStatus, deviceActive: row.deviceActive === true }
  }

  async function loadClientStatus (clientId: string): Promise<string | undefined> {
    const key = clientCacheKey(clientId)
    const cached = cache.getLocal<{ status: string }>(key) ?? await cache.get<{ status: string }>(key)
    if (cached) return cached.status
    const [row] = await database.lookupDb.select({ status: clients.status }).from(clients).where(eq(clients.id, clientId)).limit(1)
    if (!row) return undefined
    void cache.set(key, { status: row.status }, CACHE_TTL_S)
    return row.status
  }

  function answer (code: ValidationCode, state: SerialState | undefined, deviceId: string, nonce: string | null | undefined, now: Date): ValidationResult {
    const result: ValidationResult = {
      valid: code === 'VALID',
      code,
      message: MESSAGES[code],
      expiresAt: state?.expiresAt != null ? new Date(state.expiresAt) : null,
      remainingDevices: state ? Math.max(0, state.maxUsageCount - state.activeDevices) : null,
      isDemo: state ? state.isDemo : null,
      serverTime: now,
      nonce: nonce ?? null,
      signature: null
    }
    if (nonce) result.signature = signer.sign(signedPayload(result, deviceId)).toString('base64url')
    metrics.validations.inc({ code })
    return result
  }

  const service = {
    view,

    async create (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<IssuedSerial> {
      const data = parseInput(createInput, input)
      requireWriter(actor)
      checkExpiry(data.expiresAt)
      await requireClient(actor, data.clientId)
      const [issued] = await issue(actor, meta, data, 1, null)
      return issued!
    },

    async createMany (actor: Actor, meta: RequestMeta | undefined, input: unknown, headerKey?: string): Promise<{ count: number, serials: IssuedSerial[] }> {
      if (!config.features.bulkOperations) throw new FeatureDisabledError('FEATURE_BULK_OPERATIONS')
      const data = parseInput(createManyInput, input)
      requireWriter(actor)
      checkExpiry(data.expiresAt)
      await requireClient(actor, data.clientId)
      const key = headerKey ?? data.idempotencyKey ?? undefined
      const run = async (exec?: Executor) => {
        const issued = await issue(actor, meta, data, data.count, newId('bat'), exec)
        return { count: issued.length, serials: issued }
      }
      if (!key) return run()
      // The stored answer holds the numbers in clear only as long as the key lives (24 h), encrypted.
      return withIdempotency(deps, `bulk:${data.clientId}`, key, { ...data, idempotencyKey: undefined }, run, {
        encode: (value) => ({ enc: keyring.encrypt(JSON.stringify(value)) }),
        decode: (stored) => reviveIssued(JSON.parse(keyring.decrypt((stored as { enc: string }).enc)))
      })
    },

    async update (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<SerialView> {
      const data = parseInput(updateInput, input)
      checkExpiry(data.expiresAt)
      const changes: Record<string, unknown> = {}
      if (data.maxUsageCount !== undefined) changes.maxUsageCount = data.maxUsageCount
      if (data.expiresAt !== undefined) changes.expiresAt = data.expiresAt
      if (data.metadata !== undefined) changes.metadata = data.metadata
      return changeState(actor, meta, data.id, 'serial.updated', () => changes, changes)
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
      requireWriter(actor)
      return db.transaction(async (tx) => {
        const [row] = await tx.select().from(serials).where(eq(serials.id, id)).limit(1)
        if (!row || !canSeeClient(actor, row.clientId)) throw new NotFoundError(`serial ${id} not found`)
        await appendAudit(tx, actor, meta, [{ action: 'serial.revealed', targetType: 'serial', targetId: id, clientId: row.clientId }])
        return formatSerialNumber(keyring.decrypt(row.numberEnc))
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
      if (actor.role === 'MANAGER') where.push(eq(serials.clientId, actor.clientId ?? ''))
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
    },

    /**
     * The hot path. A known device on a cached serial is answered from memory with no
     * synchronous database write; a new device takes a slot inside one transaction that locks
     * the serial row, so the limit holds across any number of requests and instances.
     */
    async validate (input: unknown): Promise<ValidationOutcome> {
      const data = parseInput(validateInput, input)
      const now = clock()
      const normalised = normaliseSerialNumber(data.serialNumber)
      if (!normalised) return { result: answer('INVALID_FORMAT', undefined, data.deviceId, data.nonce, now) }
      const numberHash = lookupHash(config.pepper, normalised)
      const { state, clientStatus, deviceActive } = await loadForValidation(numberHash, data.deviceId)
      const failed = checkSerial(state, clientStatus, now.getTime())
      if (failed || !state) {
        if (state) deps.recorder.validation(state, null, failed!, now)
        return { result: answer(failed ?? 'NOT_FOUND', state, data.deviceId, data.nonce, now), serial: state }
      }
      const deviceKey = deviceCacheKey(state.id, data.deviceId)
      // Known from the query that just loaded the serial, else L1, L2 (which fills L1), then a
      // plain read; what came from PostgreSQL is cached without delaying the answer.
      const cached = deviceActive === undefined && Boolean(cache.getLocal<1>(deviceKey) ?? await cache.get<1>(deviceKey))
      const known = cached || (deviceActive ?? await deps.devices.isActive(state.id, data.deviceId))
      if (known && !cached) void cache.set(deviceKey, 1, CACHE_TTL_S)
      if (known) {
        deps.recorder.validation(state, data.deviceId, 'VALID', now)
        return { result: answer('VALID', state, data.deviceId, data.nonce, now), serial: state }
      }
      const outcome = await deps.devices.activate(state.id, data.deviceId, data.deviceInfo ?? null, now)
      if (outcome.code === 'VALID') await cache.set(deviceKey, 1, CACHE_TTL_S)
      if (outcome.activated) await cache.invalidate([serialCacheKey(numberHash)])
      deps.recorder.validation(outcome.state ?? state, outcome.code === 'VALID' ? data.deviceId : null, outcome.code, now)
      return { result: answer(outcome.code, outcome.state ?? state, data.deviceId, data.nonce, now), serial: outcome.state ?? state }
    }
  }
  return service
}

/** The byte string a nonce signature covers: canonical JSON (sorted keys) of these fields. */
export function signedPayload (r: ValidationResult, deviceId: string): string {
  return canonicalJson({
    code: r.code,
    deviceId,
    expiresAt: r.expiresAt ? r.expiresAt.toISOString() : null,
    isDemo: r.isDemo,
    nonce: r.nonce,
    remainingDevices: r.remainingDevices,
    serverTime: r.serverTime.toISOString(),
    valid: r.valid
  })
}

function reviveIssued (value: { count: number, serials: IssuedSerial[] }) {
  for (const s of value.serials) {
    const v = s.serial as unknown as Record<string, unknown>
    for (const k of ['expiresAt', 'revokedAt', 'createdAt', 'updatedAt']) if (typeof v[k] === 'string') v[k] = new Date(v[k] as string)
  }
  return value
}

export type SerialService = ReturnType<typeof createSerialService>
export type { DomainEvent }
