// A new device takes a slot in one prepared statement (no transaction, no Describe round trip):
// the conditional increment of serials.active_devices is the guarantee, so the limit holds under
// any concurrency without locking the serial row first. The statement only succeeds in the plain
// case (serial and client in good standing, a free slot, the device not already active); when it
// changes nothing, or aborts because the same device won a race against it, the caller falls back
// to its transaction, which finds the precise answer.
import { sql } from 'drizzle-orm'
import { pgErrorCode, queryRows, type Executor } from '../../infra/database.ts'
import type { SerialState } from '../cached-state.ts'

export type SlotState = Omit<SerialState, 'clientNumber'>

/** PostgreSQL's division_by_zero: how the statement aborts itself when it lost a race (below). */
const LOST_RACE = '22012'

export interface FastActivation {
  /** The slot was taken by this call: the serial as the increment left it. */
  taken?: SlotState
}

interface Row { id: string, client_id: string, status: string, expires_at: Date | string | null, max_usage_count: number, active_devices: number, is_demo: boolean, policy_id: string | null }

const state = (r: Row): SlotState => ({
  id: r.id,
  clientId: r.client_id,
  status: r.status as SerialState['status'],
  expiresAt: r.expires_at === null ? null : new Date(r.expires_at).getTime(),
  maxDevices: r.max_usage_count,
  activeDevices: r.active_devices,
  isDemo: r.is_demo,
  policyId: r.policy_id
})

export async function activateInOneStatement (db: Executor, a: { serialId: string, deviceId: string, id: string, info: string | null, now: Date, lease: Date | null }): Promise<FastActivation> {
  const now = a.now.toISOString()
  const lease = a.lease?.toISOString() ?? null
  // `not exists` reads the statement's snapshot: two calls for the same new device may both pass
  // it; only one inserts (the unique key). The other finds no `d` row, and its last line divides
  // by that count: the error aborts the whole statement, so its increment and outbox row are
  // undone atomically (nothing to compensate, nothing left over-counted if the process dies).
  // The divisor is a subquery, so the planner cannot fold it; with no `s` row it is never read.
  let row: Row | undefined
  try {
    [row] = await queryRows<Row>(db, sql`
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
    select s.*, 1 / (select count(*) from d)::int as inserted from s`)
  } catch (error) {
    if (pgErrorCode(error) === LOST_RACE) return {}
    throw error
  }
  return row ? { taken: state(row) } : {}
}
