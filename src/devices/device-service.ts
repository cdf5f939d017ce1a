// Devices hold a serial's slots. Activation and release run in one transaction that locks the
// serial row, so the active-device count and the device rows never disagree.
import { and, asc, eq, gt, sql } from 'drizzle-orm'
import { z } from 'zod'
import { clients, devices, serials } from '../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { writeEvents } from '../events/domain-events.ts'
import { ANONYMOUS, canSeeClient, type Actor, type RequestMeta } from '../platform/auth.ts'
import { lookupHash } from '../platform/crypto.ts'
import type { Deps } from '../platform/deps.ts'
import { AuthorizationError, NotFoundError, ValidationError } from '../platform/errors.ts'
import { newId } from '../platform/ids.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../platform/pagination.ts'
import { parseInput } from '../platform/validation.ts'
import { normaliseSerialNumber } from '../serials/serial-number.ts'
import { checkSerial, hasFreeSlot, type SerialState, type ValidationCode } from '../serials/serial-rules.ts'
import { deviceCacheKey, deviceIdSchema, serialCacheKey, stateOf } from '../serials/serial-service.ts'

export type DeviceRow = typeof devices.$inferSelect
export interface DeviceView extends Omit<DeviceRow, 'deviceInfoEnc'> { deviceInfo: Record<string, unknown> | null }

export interface ActivationOutcome {
  code: ValidationCode
  /** Fresh state read under the lock; undefined when the serial vanished. */
  state?: SerialState
  /** true when this call took a new slot. */
  activated: boolean
}

const releaseInput = z.object({ serialNumber: z.string().max(64), deviceId: deviceIdSchema })
const deactivateInput = z.object({ serialId: z.string().min(1).max(64), deviceId: deviceIdSchema })

export function createDeviceService (deps: Deps) {
  const { database, keyring, cache, clock, config } = deps
  const db = database.db

  const view = (row: DeviceRow): DeviceView => {
    const { deviceInfoEnc, ...rest } = row
    return { ...rest, deviceInfo: deviceInfoEnc ? JSON.parse(keyring.decrypt(deviceInfoEnc)) as Record<string, unknown> : null }
  }

  /** Frees the device's slot; the device may take one again later. */
  async function release (serialId: string, deviceId: string, actor: Actor | null, meta: RequestMeta | undefined): Promise<DeviceView> {
    const result = await db.transaction(async (tx) => {
      const [serial] = await tx.select().from(serials).where(eq(serials.id, serialId)).for('update').limit(1)
      if (!serial || (actor && !canSeeClient(actor, serial.clientId))) throw new NotFoundError(`serial ${serialId} not found`)
      const [device] = await tx.update(devices).set({ active: false, deactivatedAt: clock() })
        .where(and(eq(devices.serialId, serialId), eq(devices.deviceId, deviceId), eq(devices.active, true))).returning()
      if (!device) {
        const [existing] = await tx.select().from(devices).where(and(eq(devices.serialId, serialId), eq(devices.deviceId, deviceId))).limit(1)
        if (!existing) throw new NotFoundError(`device ${deviceId} not found on serial ${serialId}`)
        return { device: existing, serial, changed: false } // already released: idempotent
      }
      await tx.update(serials).set({ activeDevices: sql`greatest(${serials.activeDevices} - 1, 0)` }).where(eq(serials.id, serialId))
      await writeEvents(tx, [{ type: 'device.deactivated', aggregateId: serialId, clientId: serial.clientId, payload: { serialId, clientId: serial.clientId, deviceId, by: actor ? 'staff' : 'device' } }])
      // A device releasing its own slot is audited too, under the anonymous actor.
      await appendAudit(tx, actor ?? ANONYMOUS, meta, [{ action: actor ? 'device.deactivated' : 'device.released', targetType: 'device', targetId: device.id, clientId: serial.clientId, changes: { serialId, deviceId } }])
      return { device, serial, changed: true }
    })
    if (result.changed) {
      deps.eventsWritten()
      await cache.invalidate([deviceCacheKey(serialId, deviceId), serialCacheKey(result.serial.numberHash)])
    }
    return view(result.device)
  }

  return {
    view,

    /** Plain read, no lock: the common cold-cache case of a device that already holds a slot. */
    async isActive (serialId: string, deviceId: string): Promise<boolean> {
      const [device] = await database.lookupDb.select({ active: devices.active }).from(devices)
        .where(and(eq(devices.serialId, serialId), eq(devices.deviceId, deviceId))).limit(1)
      return device?.active === true
    },

    async activate (serialId: string, deviceId: string, deviceInfo: Record<string, unknown> | null, now: Date): Promise<ActivationOutcome> {
      const outcome = await db.transaction(async (tx) => {
        // The row lock serialises activations of one serial across every instance.
        const [row] = await tx.select({ serial: serials, clientNumber: clients.clientNumber, clientStatus: clients.status })
          .from(serials).innerJoin(clients, eq(clients.id, serials.clientId))
          .where(eq(serials.id, serialId)).for('update', { of: serials }).limit(1)
        if (!row) return { code: 'NOT_FOUND' as const, activated: false }
        let state = stateOf(row.serial, row.clientNumber)
        const failed = checkSerial(state, row.clientStatus, now.getTime())
        if (failed) return { code: failed, state, activated: false }
        const [device] = await tx.select({ id: devices.id, active: devices.active }).from(devices)
          .where(and(eq(devices.serialId, serialId), eq(devices.deviceId, deviceId))).limit(1)
        if (device?.active) return { code: 'VALID' as const, state, activated: false }
        if (!hasFreeSlot(state)) return { code: 'TOO_MANY_DEVICES' as const, state, activated: false }
        // Conditional increment: even without the lock above, the limit could not be passed.
        const [counted] = await tx.update(serials).set({ activeDevices: sql`${serials.activeDevices} + 1` })
          .where(and(eq(serials.id, serialId), sql`${serials.activeDevices} < ${serials.maxUsageCount}`))
          .returning({ activeDevices: serials.activeDevices })
        if (!counted) return { code: 'TOO_MANY_DEVICES' as const, state, activated: false }
        const info = deviceInfo ? keyring.encrypt(JSON.stringify(deviceInfo)) : null
        await tx.insert(devices).values({ id: newId('dev'), serialId, deviceId, deviceInfoEnc: info, active: true, firstSeenAt: now, lastSeenAt: now })
          .onConflictDoUpdate({ target: [devices.serialId, devices.deviceId], set: { active: true, deactivatedAt: null, lastSeenAt: now, ...(info ? { deviceInfoEnc: info } : {}) } })
        await writeEvents(tx, [{ type: 'device.activated', aggregateId: serialId, clientId: state.clientId, payload: { serialId, clientId: state.clientId, deviceId } }])
        state = { ...state, activeDevices: counted.activeDevices }
        return { code: 'VALID' as const, state, activated: true }
      })
      if (outcome.activated) deps.eventsWritten()
      return outcome
    },

    /** Public: the serial number is the credential (a device giving up its own slot). */
    async releaseBySerialNumber (input: unknown): Promise<DeviceView> {
      const data = parseInput(releaseInput, input)
      const normalised = normaliseSerialNumber(data.serialNumber)
      if (!normalised) throw new ValidationError('Validation failed', [{ field: 'serialNumber', message: 'Invalid format' }])
      const [serial] = await db.select({ id: serials.id }).from(serials).where(eq(serials.numberHash, lookupHash(config.pepper, normalised))).limit(1)
      if (!serial) throw new NotFoundError('serial not found')
      return release(serial.id, data.deviceId, null, undefined)
    },

    async deactivate (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<DeviceView> {
      const data = parseInput(deactivateInput, input)
      if (actor.role !== 'ADMIN' && actor.role !== 'MANAGER') throw new AuthorizationError('this role may not change devices')
      return release(data.serialId, data.deviceId, actor, meta)
    },

    /** Devices of a serial the caller can already see (checked by the caller). */
    async listForSerial (serialId: string, args: PageArgs, activeOnly: boolean | null | undefined): Promise<Page<DeviceView>> {
      const size = pageSize(args.first)
      const after = decodeCursor(args.after)
      const where = [eq(devices.serialId, serialId)]
      if (activeOnly != null) where.push(eq(devices.active, activeOnly))
      if (after) where.push(gt(devices.id, after))
      const rows = await database.readDb.select().from(devices).where(and(...where)).orderBy(asc(devices.id)).limit(size + 1)
      const page = toPage(rows, size)
      return { items: page.items.map(view), hasNextPage: page.hasNextPage }
    }
  }
}

export type DeviceService = ReturnType<typeof createDeviceService>
