// A new device takes a slot in one prepared statement (no transaction, no Describe round trip):
// the conditional increment of serials.active_devices is the guarantee, so the limit holds under
// any concurrency without locking the serial row first. The statement only succeeds in the plain
// case (serial and client in good standing, a free slot, the device not already active); when it
// changes nothing the caller falls back to its transaction, which finds the precise answer.
import { sql } from 'drizzle-orm'
import { queryRows, type Executor } from '../platform/database.ts'
import type { SerialState } from '../serials/serial-rules.ts'

export type SlotState = Omit<SerialState, 'clientNumber'>

export interface FastActivation {
  /** The slot was taken by this call: the serial as the increment left it. */
  taken?: SlotState
  /**
   * The same device was activated by a concurrent call between this statement's snapshot and its
   * increment: the increment was undone, the device holds its (one) slot.
   */
  lostRace?: SlotState
}

interface Row { id: string, client_id: string, status: string, expires_at: Date | string | null, max_usage_count: number, active_devices: number, is_demo: boolean, policy_id: string | null, inserted: number }

const state = (r: Row): SlotState => ({
  id: r.id,
  clientId: r.client_id,
  status: r.status as SerialState['status'],
  expiresAt: r.expires_at === null ? null : new Date(r.expires_at).getTime(),
  maxUsageCount: r.max_usage_count,
  activeDevices: r.active_devices,
  isDemo: r.is_demo,
  policyId: r.policy_id
})

export async function activateInOneStatement (db: Executor, a: { serialId: string, deviceId: string, id: string, info: string | null, now: Date, lease: Date | null }): Promise<FastActivation> {
  const now = a.now.toISOString()
  const lease = a.lease?.toISOString() ?? null
  // `not exists` reads the statement's snapshot: two calls for the same new device may both pass
  // it; only one inserts (the unique key), the other sees no `d` row and gives its increment back.
  const [row] = await queryRows<Row>(db, sql`
    with s as (
      update serials set active_devices = active_devices + 1
      where id = ${a.serialId} and status = 'ACTIVE' and (expires_at is null or expires_at > ${now}::timestamptz)
        and active_devices < max_usage_count
        and not exists (select 1 from devices where serial_id = ${a.serialId} and device_id = ${a.deviceId} and active)
        and exists (select 1 from clients c where c.id = serials.client_id and c.status <> 'SUSPENDED')
      returning id, client_id, status, expires_at, max_usage_count, active_devices, is_demo, policy_id
    ), d as (
      insert into devices (id, serial_id, device_id, device_info_enc, active, first_seen_at, last_seen_at, lease_expires_at)
      select ${a.id}, s.id, ${a.deviceId}, ${a.info}, true, ${now}::timestamptz, ${now}::timestamptz, ${lease}::timestamptz from s
      on conflict (serial_id, device_id) do update set active = true, deactivated_at = null, last_seen_at = excluded.last_seen_at,
        lease_expires_at = excluded.lease_expires_at, device_info_enc = coalesce(excluded.device_info_enc, devices.device_info_enc)
        where not devices.active
      returning serial_id
    ), o as (
      insert into outbox (type, aggregate_id, client_id, payload)
      select 'device.activated', s.id, s.client_id, jsonb_build_object('serialId', s.id, 'clientId', s.client_id, 'deviceId', ${a.deviceId}::text)
      from s join d on d.serial_id = s.id
    )
    select s.*, (select count(*) from d)::int as inserted from s`)
  if (!row) return {}
  if (row.inserted > 0) return { taken: state(row) }
  const [back] = await queryRows<Row>(db, sql`
    update serials set active_devices = greatest(active_devices - 1, 0) where id = ${a.serialId}
    returning id, client_id, status, expires_at, max_usage_count, active_devices, is_demo, policy_id, 0 as inserted`)
  return { lostRace: state(back ?? row) }
}
