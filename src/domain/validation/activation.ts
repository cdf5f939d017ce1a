// A device takes a slot: the write of the validation hot path. The plain case is one prepared
// statement (activation-statement.ts); anything it cannot decide takes one transaction holding the
// serial row lock (then device rows, the order release and culling use too), so the device limit
// and the activation cap hold across any number of requests and instances.
import { and, eq, gt, sql } from 'drizzle-orm'
import { clients, deviceActivations, devices, serials } from '../../../schema/index.ts'
import { writeEvents } from '../../events/domain-events.ts'
import { newId } from '../../kernel/ids.ts'
import type { Deps } from '../deps.ts'
import type { CulledDevice, DeviceService } from '../devices/device-service.ts'
import { leaseUntil } from '../policies/lease-rules.ts'
import { ACTIVATION_WINDOW_MS } from '../policies/policy-rules.ts'
import { stateOf } from '../serials/serial-state.ts'
import type { PolicyTerms, SerialState } from '../cached-state.ts'
import { activateInOneStatement } from './activation-statement.ts'
import { checkNewDevice, checkSerial, type ValidationCode } from './validation-rules.ts'

export interface ActivationOutcome {
  code: ValidationCode
  /** Fresh state read under the lock; undefined when the serial vanished. */
  state?: SerialState
  /** true when this call took a new slot. */
  activated: boolean
  /** The device's lease after this call (floating policies only). */
  leaseExpiresAt: number | null
}

/** At most one device.limit_reached event per serial in this many ms. */
export const LIMIT_EVENT_INTERVAL_MS = 3_600_000

export type Activate = (serialId: string, deviceId: string, deviceInfo: Record<string, unknown> | null, now: Date, terms: PolicyTerms | null, clientNumber: string) => Promise<ActivationOutcome>

export function createActivation (deps: Deps, deviceService: Pick<DeviceService, 'cullSerial' | 'forgetCulled'>): Activate {
  const { database, keyring } = deps
  const db = database.db
  /**
   * A device asks for a slot. One transaction holding the serial row lock, so the limit holds
   * across any number of requests and instances: the serial checks again under the lock, a
   * device already holding a slot renews its lease, lapsed leases are culled only when the
   * serial is full, then the device limit and the rolling activation cap, then the increment.
   */
  return async function activate (serialId: string, deviceId: string, deviceInfo: Record<string, unknown> | null, now: Date, terms: PolicyTerms | null, clientNumber: string): Promise<ActivationOutcome> {
    const lease = leaseUntil(terms, now.getTime())
    const leaseDate = lease === null ? null : new Date(lease)
    // The common case in one prepared statement; anything it cannot decide (a full serial, a
    // status change, a device already active, a rolling cap) takes the transaction below.
    if (terms?.maxActivationsPerDay == null) {
      const info = deviceInfo ? keyring.encrypt(JSON.stringify(deviceInfo)) : null
      const fast = await activateInOneStatement(database.preparedDb, { serialId, deviceId, id: newId('dev'), info, now, lease: leaseDate })
      if (fast.taken) {
        deps.eventsWritten()
        return { code: 'VALID', state: { ...fast.taken, clientNumber }, activated: true, leaseExpiresAt: lease }
      }
    }
    let culled: CulledDevice[] = []
    let wroteEvents = false
    const outcome: ActivationOutcome = await db.transaction(async (tx) => {
      const [row] = await tx.select({ serial: serials, clientNumber: clients.clientNumber, clientStatus: clients.status })
        .from(serials).innerJoin(clients, eq(clients.id, serials.clientId))
        .where(eq(serials.id, serialId)).for('update', { of: serials }).limit(1)
      if (!row) return { code: 'NOT_FOUND' as const, activated: false, leaseExpiresAt: null }
      let state = stateOf(row.serial, row.clientNumber)
      const failed = checkSerial(state, row.clientStatus, now.getTime())
      if (failed) return { code: failed, state, activated: false, leaseExpiresAt: null }
      const [device] = await tx.select({ id: devices.id, active: devices.active }).from(devices)
        .where(and(eq(devices.serialId, serialId), eq(devices.deviceId, deviceId))).limit(1)
      if (device?.active) {
        if (leaseDate) await tx.update(devices).set({ leaseExpiresAt: leaseDate, lastSeenAt: now }).where(eq(devices.id, device.id))
        return { code: 'VALID' as const, state, activated: false, leaseExpiresAt: lease }
      }
      if (terms?.floating && state.activeDevices >= state.maxDevices) {
        culled = await deviceService.cullSerial(tx, row.serial, now)
        if (culled.length > 0) { wroteEvents = true; state = { ...state, activeDevices: Math.max(0, state.activeDevices - culled.length) } }
      }
      let activations = 0
      if (terms?.maxActivationsPerDay != null) {
        const [count] = await tx.select({ n: sql<number>`count(*)::int` }).from(deviceActivations)
          .where(and(eq(deviceActivations.serialId, serialId), gt(deviceActivations.activatedAt, new Date(now.getTime() - ACTIVATION_WINDOW_MS))))
        activations = Number(count?.n ?? 0)
      }
      const refused = checkNewDevice(state, activations, terms?.maxActivationsPerDay ?? null)
      if (refused) {
        // Claimed by a conditional update, so two instances never both announce the same hour.
        const [claimed] = await tx.update(serials).set({ limitReachedAt: now })
          .where(and(eq(serials.id, serialId), sql`(${serials.limitReachedAt} is null or ${serials.limitReachedAt} <= ${new Date(now.getTime() - LIMIT_EVENT_INTERVAL_MS).toISOString()}::timestamptz)`))
          .returning({ id: serials.id })
        if (claimed) {
          wroteEvents = true
          await writeEvents(tx, [{ type: 'device.limit_reached', aggregateId: serialId, clientId: state.clientId, payload: { serialId, clientId: state.clientId, deviceId, code: refused } }])
        }
        return { code: refused, state, activated: false, leaseExpiresAt: null }
      }
      // Conditional increment: even without the lock above, the limit could not be passed.
      const [counted] = await tx.update(serials).set({ activeDevices: sql`${serials.activeDevices} + 1` })
        .where(and(eq(serials.id, serialId), sql`${serials.activeDevices} < ${serials.maxDevices}`))
        .returning({ activeDevices: serials.activeDevices })
      if (!counted) return { code: 'TOO_MANY_DEVICES' as const, state, activated: false, leaseExpiresAt: null }
      const info = deviceInfo ? keyring.encrypt(JSON.stringify(deviceInfo)) : null
      await tx.insert(devices).values({ id: newId('dev'), serialId, deviceId, deviceInfoEnc: info, active: true, firstSeenAt: now, lastSeenAt: now, leaseExpiresAt: leaseDate })
        .onConflictDoUpdate({ target: [devices.serialId, devices.deviceId], set: { active: true, deactivatedAt: null, lastSeenAt: now, leaseExpiresAt: leaseDate, ...(info ? { deviceInfoEnc: info } : {}) } })
      if (terms?.maxActivationsPerDay != null) await tx.insert(deviceActivations).values({ serialId, deviceId, activatedAt: now })
      await writeEvents(tx, [{ type: 'device.activated', aggregateId: serialId, clientId: state.clientId, payload: { serialId, clientId: state.clientId, deviceId } }])
      wroteEvents = true
      state = { ...state, activeDevices: counted.activeDevices }
      return { code: 'VALID' as const, state, activated: true, leaseExpiresAt: lease }
    })
    if (culled.length > 0) await deviceService.forgetCulled(culled)
    else if (wroteEvents) deps.eventsWritten()
    return outcome
  }
}
