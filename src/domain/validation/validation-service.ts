// The validation hot path, top to bottom: parse → normalise → serial state (L1 → L2 → PostgreSQL)
// → serial rules → policy terms → the device's slot (memory → PostgreSQL) → lease or activation →
// answer. Heartbeats run the same path without the extras of a validation (nonce, device info).
import { and, eq } from 'drizzle-orm'
import { LRUCache } from 'lru-cache'
import { z } from 'zod'
import { clients, devices, serials } from '../../../schema/index.ts'
import type { DeviceService } from '../devices/device-service.ts'
import { createActivation } from './activation.ts'
import { lookupHash } from '../../infra/crypto.ts'
import type { Deps } from '../deps.ts'
import { readThrough, store } from '../../infra/cache.ts'
import { clientStatusCache, deviceSlotCache, serialStateCache, type PolicyTerms, type SerialState } from '../cached-state.ts'
import { answerSigningInput } from '../../../packages/client/src/verify.ts'
import { parseInput } from '../../kernel/input.ts'
import { loadPolicyTerms } from '../policies/policy-service.ts'
import { normaliseSerialNumber } from '../serials/serial-number.ts'
import { checkSerial, MESSAGES, type ValidationCode } from './validation-rules.ts'
import { deviceIdSchema, deviceInfoSchema, stateOf } from '../serials/serial-state.ts'
import type { ValidationRecorder } from './validation-recorder.ts'
import { isLapsed, leaseUntil } from '../policies/lease-rules.ts'

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
  /** The policy's entitlement codes; empty without a policy or when the answer is not VALID. */
  entitlements: string[]
  /** Floating policies: when this device's lease lapses without a heartbeat; else null. */
  leaseExpiresAt: Date | null
}

export interface ValidationOutcome { result: ValidationResult, serial?: SerialState, policy?: PolicyTerms | null }

/** A serial as loadSerial reads it: the client's status, and the device's slot when PostgreSQL was asked (null = none). */
interface SerialRead { state?: SerialState, clientStatus?: string, slot?: { active: boolean, leaseExpiresAt: number | null } | null }

export interface HeartbeatResult { alive: boolean, code: ValidationCode, leaseExpiresAt: Date | null }

const validateInput = z.object({
  serialNumber: z.string().max(64),
  deviceId: deviceIdSchema,
  deviceInfo: deviceInfoSchema.optional().nullable(),
  nonce: z.string().min(1).max(128).optional().nullable()
})
const heartbeatInput = z.object({ serialNumber: z.string().max(64), deviceId: deviceIdSchema })

/** The bytes a nonce signature covers: the SDK's own definition, so both sides agree by construction. */
export function signedPayload (r: ValidationResult, deviceId: string, nonce: string): Uint8Array {
  return answerSigningInput({
    valid: r.valid,
    code: r.code,
    entitlements: r.entitlements,
    expiresAt: r.expiresAt ? r.expiresAt.toISOString() : null,
    isDemo: r.isDemo,
    leaseExpiresAt: r.leaseExpiresAt ? r.leaseExpiresAt.toISOString() : null,
    nonce,
    remainingDevices: r.remainingDevices,
    serverTime: r.serverTime.toISOString()
  }, deviceId)
}

export function createValidationService (deps: Deps & { devices: DeviceService, recorder: ValidationRecorder }) {
  const { database, cache, config, signer, metrics } = deps
  const activate = createActivation(deps, deps.devices)
  // Leases renewed on this instance since they were last read, keyed like the device cache. Only
  // consulted while the device cache still holds the slot, so a release or cull anywhere (which
  // invalidates that key on every instance) is never answered from here.
  const renewed = new LRUCache<string, number>({ max: 200_000 })

  /** Serial state from L1, L2, else one query with the client's status and this device's slot. */
  async function loadSerial (numberHash: string, deviceId: string): Promise<SerialRead> {
    /** Set when the query ran: it read the client's status and the slot too. */
    const queried: { read?: SerialRead } = {}
    const cached = readThrough(cache, serialStateCache, [numberHash], async () => {
      const [row] = await database.lookupDb.select({ serial: serials, clientNumber: clients.clientNumber, clientStatus: clients.status, deviceActive: devices.active, leaseExpiresAt: devices.leaseExpiresAt })
        .from(serials).innerJoin(clients, eq(clients.id, serials.clientId))
        .leftJoin(devices, and(eq(devices.serialId, serials.id), eq(devices.deviceId, deviceId)))
        .where(eq(serials.numberHash, numberHash)).limit(1)
      if (!row) return undefined
      const state = stateOf(row.serial, row.clientNumber)
      void store(cache, clientStatusCache, [state.clientId], { status: row.clientStatus })
      queried.read = { state, clientStatus: row.clientStatus, slot: row.deviceActive === null ? null : { active: row.deviceActive, leaseExpiresAt: row.leaseExpiresAt?.getTime() ?? null } }
      return state
    })
    // An L1 hit comes back as it is: no await for it.
    const state = cached instanceof Promise ? await cached : cached
    if (queried.read) return queried.read
    if (!state) return {}
    return { state, clientStatus: (await loadClientStatus(state.clientId))?.status }
  }

  /** The client's status from L1, L2, else PostgreSQL; an L1 hit comes back as it is. */
  function loadClientStatus (clientId: string) {
    return readThrough(cache, clientStatusCache, [clientId], async () => {
      const [row] = await database.lookupDb.select({ status: clients.status }).from(clients).where(eq(clients.id, clientId)).limit(1)
      return row ? { status: row.status } : undefined
    })
  }

  /**
   * Whether the device already holds a slot, renewing its lease when it does: from memory when
   * the slot is cached and its lease has not lapsed (the write is batched), else from PostgreSQL.
   * Returns the lease after renewal (null for node-locked), or undefined when no slot is held.
   */
  async function holdSlot (state: SerialState, deviceId: string, slot: { active: boolean, leaseExpiresAt: number | null } | null | undefined, terms: PolicyTerms | null, now: number): Promise<{ lease: number | null } | undefined> {
    const key = deviceSlotCache.key(state.id, deviceId)
    const next = leaseUntil(terms, now)
    if (slot === undefined) {
      // Nothing to load: a slot is read from PostgreSQL only by activation or renewInDb.
      const read = readThrough(cache, deviceSlotCache, [state.id, deviceId], () => undefined)
      const cached = read instanceof Promise ? await read : read
      if (cached !== undefined) {
        const stored = cached === 1 ? null : cached.lease
        const lease = Math.max(stored ?? 0, renewed.get(key) ?? 0)
        if (next === null) return { lease: null }
        if (!isLapsed(lease, now)) { renewed.set(key, next); return { lease: next } }
        // Lapsed in memory: only PostgreSQL can say whether the slot survived.
        return renewInDb(key, state.id, deviceId, next)
      }
      // Not in L1 or L2: most likely a new device. Activation finds out in one statement, and a
      // device PostgreSQL already knows (its cache entry expired) takes activation's transaction,
      // which renews it; no separate read of the slot first.
      return undefined
    }
    if (!slot?.active) return undefined
    if (next === null) { void store(cache, deviceSlotCache, [state.id, deviceId], 1); return { lease: null } }
    if (slot.leaseExpiresAt !== null && !isLapsed(slot.leaseExpiresAt, now)) {
      void store(cache, deviceSlotCache, [state.id, deviceId], { lease: slot.leaseExpiresAt })
      renewed.set(key, next)
      return { lease: next }
    }
    return renewInDb(key, state.id, deviceId, next)
  }

  async function renewInDb (key: string, serialId: string, deviceId: string, next: number): Promise<{ lease: number } | undefined> {
    if (!await deps.devices.renewLease(serialId, deviceId, next)) return undefined
    void store(cache, deviceSlotCache, [serialId, deviceId], { lease: next })
    renewed.set(key, next)
    return { lease: next }
  }

  function answer (code: ValidationCode, state: SerialState | undefined, terms: PolicyTerms | null, lease: number | null, deviceId: string, nonce: string | null | undefined, now: Date): ValidationResult {
    const result: ValidationResult = {
      valid: code === 'VALID',
      code,
      message: MESSAGES[code],
      expiresAt: state?.expiresAt != null ? new Date(state.expiresAt) : null,
      remainingDevices: state ? Math.max(0, state.maxDevices - state.activeDevices) : null,
      isDemo: state ? state.isDemo : null,
      serverTime: now,
      nonce: nonce ?? null,
      signature: null,
      entitlements: code === 'VALID' && terms ? terms.entitlements : [],
      leaseExpiresAt: code === 'VALID' && lease !== null ? new Date(lease) : null
    }
    if (nonce) result.signature = signer.sign(signedPayload(result, deviceId, nonce)).toString('base64url')
    metrics.validations.inc({ code })
    return result
  }

  /** The shared path of validations and heartbeats. */
  async function check (data: { serialNumber: string, deviceId: string, deviceInfo?: Record<string, unknown> | null, nonce?: string | null }, kind: 'validation' | 'heartbeat'): Promise<ValidationOutcome> {
    const now = deps.clock()
    const record = (state: SerialState, deviceId: string | null, code: ValidationCode, lease: number | null) => {
      if (kind === 'validation') deps.recorder.validation(state, deviceId, code, now, lease)
      else if (deviceId && lease !== null) deps.recorder.lease(state, deviceId, now, lease)
    }
    const normalised = normaliseSerialNumber(data.serialNumber)
    if (!normalised) return { result: answer('INVALID_FORMAT', undefined, null, null, data.deviceId, data.nonce, now) }
    const numberHash = lookupHash(config.pepper, normalised)

    const { state, clientStatus, slot } = await loadSerial(numberHash, data.deviceId)
    const failed = checkSerial(state, clientStatus, now.getTime())
    if (failed || !state) {
      if (state) record(state, null, failed!, null)
      return { result: answer(failed ?? 'NOT_FOUND', state, null, null, data.deviceId, data.nonce, now), serial: state }
    }
    const terms = state.policyId ? await loadPolicyTerms(deps, state.policyId) ?? null : null

    const held = await holdSlot(state, data.deviceId, slot, terms, now.getTime())
    if (held) {
      record(state, data.deviceId, 'VALID', held.lease)
      return { result: answer('VALID', state, terms, held.lease, data.deviceId, data.nonce, now), serial: state, policy: terms }
    }

    const outcome = await activate(state.id, data.deviceId, data.deviceInfo ?? null, now, terms, state.clientNumber)
    const fresh = outcome.state ?? state
    // Both cache writes change this instance's L1 before their first await; Redis and the other
    // instances are told while the answer goes out (neither write can fail the request).
    if (outcome.code === 'VALID') {
      void store(cache, deviceSlotCache, [state.id, data.deviceId], outcome.leaseExpiresAt === null ? 1 : { lease: outcome.leaseExpiresAt })
      if (outcome.leaseExpiresAt !== null) renewed.set(deviceSlotCache.key(state.id, data.deviceId), outcome.leaseExpiresAt)
    }
    // The serial's new count is known here (the statement returned it): this instance keeps it,
    // the others drop theirs. Every activation would otherwise turn the next validation of the
    // serial on this instance into a cache miss.
    if (outcome.activated) void cache.replace(serialStateCache.key(numberHash), fresh)
    record(fresh, outcome.code === 'VALID' ? data.deviceId : null, outcome.code, null)
    return { result: answer(outcome.code, fresh, terms, outcome.leaseExpiresAt, data.deviceId, data.nonce, now), serial: fresh, policy: terms }
  }

  return {
    /**
     * A known device on a cached serial is answered from memory with no synchronous database
     * write; a new device takes a slot inside one transaction that locks the serial row.
     */
    async validate (input: unknown): Promise<ValidationOutcome> {
      return check(parseInput(validateInput, input), 'validation')
    },

    /** Renews a floating lease (or takes a free slot again after a cull); public like validation. */
    async heartbeat (input: unknown): Promise<HeartbeatResult> {
      const { result } = await check(parseInput(heartbeatInput, input), 'heartbeat')
      return { alive: result.valid, code: result.code, leaseExpiresAt: result.leaseExpiresAt }
    }
  }
}

export type ValidationService = ReturnType<typeof createValidationService>
