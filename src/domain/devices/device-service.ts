// Devices hold a serial's slots. Release and culling (and activation, domain/validation) lock the serial row first (then
// device rows), so the active-device count and the device rows never disagree and two of them
// never wait on each other in opposite orders.
import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm'
import { z } from 'zod'
import { deviceActivations, devices, serials } from '../../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { writeEvents, type DomainEvent } from '../../events/domain-events.ts'
import { ANONYMOUS, canSeeClient, requireWriter, type Actor, type RequestMeta } from '../../kernel/access.ts'
import { lookupHash } from '../../infra/crypto.ts'
import { queryRows, type Executor } from '../../infra/database.ts'
import type { Deps } from '../deps.ts'
import { NotFoundError, ValidationError } from '../../kernel/errors.ts'
import { decodeCursor, pageSize, toPage, type Page, type PageArgs } from '../../kernel/pagination.ts'
import { parseInput } from '../../kernel/input.ts'
import { ACTIVATION_WINDOW_MS } from '../policies/policy-rules.ts'
import { normaliseSerialNumber } from '../serials/serial-number.ts'
import { deviceIdSchema } from '../serials/serial-state.ts'
import { deviceSlotCache, serialStateCache } from '../cached-state.ts'

export type DeviceRow = typeof devices.$inferSelect
export interface DeviceView extends Omit<DeviceRow, 'deviceInfoEnc'> { deviceInfo: Record<string, unknown> | null }

/** A lapsed lease freed by the sweep or by an activation that needed its slot. */
export interface CulledDevice { serialId: string, clientId: string, numberHash: string, deviceId: string }

/** Serials whose lapsed leases one sweep transaction frees. */
const SWEEP_BATCH = 200

const releaseInput = z.object({ serialNumber: z.string().max(64), deviceId: deviceIdSchema })
const deactivateInput = z.object({ serialId: z.string().min(1).max(64), deviceId: deviceIdSchema })

const culledEvent = (c: Omit<CulledDevice, 'numberHash'>, at: Date): DomainEvent =>
  ({ type: 'device.culled', aggregateId: c.serialId, clientId: c.clientId, payload: { serialId: c.serialId, clientId: c.clientId, deviceId: c.deviceId, at: at.toISOString() } })

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
      await cache.invalidate([deviceSlotCache.key(serialId, deviceId), serialStateCache.key(result.serial.numberHash)])
    }
    return view(result.device)
  }

  /** Frees the lapsed leases of one serial whose row the caller has locked. */
  async function cullSerial (tx: Executor, serial: { id: string, clientId: string, numberHash: string }, now: Date): Promise<CulledDevice[]> {
    const rows = await tx.update(devices).set({ active: false, deactivatedAt: now })
      .where(and(eq(devices.serialId, serial.id), eq(devices.active, true), sql`${devices.leaseExpiresAt} <= ${now.toISOString()}::timestamptz`))
      .returning({ deviceId: devices.deviceId })
    if (rows.length === 0) return []
    await tx.update(serials).set({ activeDevices: sql`greatest(${serials.activeDevices} - ${rows.length}::int, 0)` }).where(eq(serials.id, serial.id))
    const culled = rows.map((r) => ({ serialId: serial.id, clientId: serial.clientId, numberHash: serial.numberHash, deviceId: r.deviceId }))
    await writeEvents(tx, culled.map((c) => culledEvent(c, now)))
    return culled
  }

  /** After the culling transaction committed: every instance forgets the freed slots. */
  async function forgetCulled (culled: CulledDevice[]): Promise<void> {
    if (culled.length === 0) return
    deps.eventsWritten()
    const keys = new Set<string>()
    for (const c of culled) { keys.add(deviceSlotCache.key(c.serialId, c.deviceId)); keys.add(serialStateCache.key(c.numberHash)) }
    await cache.invalidate([...keys])
  }

  return {
    view,
    cullSerial,
    forgetCulled,

    /**
     * Renews a lease in PostgreSQL at once (the path for a lease not known in memory): only a
     * device still holding its slot is renewed, so a culled or released device stays out.
     */
    async renewLease (serialId: string, deviceId: string, until: number): Promise<boolean> {
      const rows = await db.update(devices).set({ leaseExpiresAt: new Date(until) })
        .where(and(eq(devices.serialId, serialId), eq(devices.deviceId, deviceId), eq(devices.active, true)))
        .returning({ id: devices.id })
      return rows.length > 0
    },

    /**
     * One batch of the background sweep, inside the caller's transaction: serials with lapsed
     * leases are locked (SKIP LOCKED: a serial busy activating culls its own leases), then their
     * lapsed leases freed. Call forgetCulled with the result after commit.
     */
    async cullLapsedIn (tx: Executor, now: Date): Promise<CulledDevice[]> {
      const due = await queryRows<{ id: string, client_id: string, number_hash: string }>(tx, sql`
        select s.id, s.client_id, s.number_hash from serials s
        where s.id in (select distinct d.serial_id from devices d where d.active and d.lease_expires_at <= ${now.toISOString()}::timestamptz limit ${SWEEP_BATCH})
        order by s.id for update of s skip locked`)
      const culled: CulledDevice[] = []
      for (const s of due) culled.push(...await cullSerial(tx, { id: s.id, clientId: s.client_id, numberHash: s.number_hash }, now))
      return culled
    },

    /** Activation rows older than the cap's window are of no further use. */
    async pruneActivations (now: Date): Promise<void> {
      await db.delete(deviceActivations).where(sql`${deviceActivations.activatedAt} < ${new Date(now.getTime() - ACTIVATION_WINDOW_MS).toISOString()}::timestamptz`)
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
      requireWriter(actor, 'change devices')
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
    },

    /** Batch load by id (GraphQL node/nodes): in the order of ids, null where absent or not visible to the actor. */
    async loadMany (actor: Actor, ids: readonly string[]): Promise<Array<DeviceView | null>> {
      // By id, on the primary: an id just returned by a write must resolve (no replica lag).
      const rows = await database.db.select({ device: devices, clientId: serials.clientId }).from(devices)
        .innerJoin(serials, eq(serials.id, devices.serialId)).where(inArray(devices.id, [...ids]))
      const byId = new Map(rows.map((r) => [r.device.id, r]))
      return ids.map((id) => {
        const row = byId.get(id)
        return row && canSeeClient(actor, row.clientId) ? view(row.device) : null
      })
    }
  }
}

export type DeviceService = ReturnType<typeof createDeviceService>
