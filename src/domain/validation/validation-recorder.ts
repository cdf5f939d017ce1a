// Keeps writes off the validation hot path: validation counts (per serial, minute and code) and
// device last-seen times and renewed leases are aggregated in memory and flushed every few seconds
// by the flush-validation-stats job, and once more at shutdown.
import { sql } from 'drizzle-orm'
import type { Db } from '../../infra/database.ts'
import type { SerialState } from '../cached-state.ts'
import type { ValidationCode } from './validation-rules.ts'

export interface ValidationRecorder {
  /** `lease`: the device's renewed lease (epoch ms) when its policy is floating. */
  validation (serial: SerialState, deviceId: string | null, code: ValidationCode, now: Date, lease?: number | null): void
  /** A heartbeat: renews the lease and last-seen time without counting a validation. */
  lease (serial: SerialState, deviceId: string, now: Date, lease: number): void
  /** Writes what is held; a flush under way finishes first (flushes never overlap). */
  flush (): Promise<void>
}

/** Flush interval in ms; the brief promises at most 5 s. */
export const FLUSH_INTERVAL_MS = 2000
/** validation_client_minutely keeps this much (the console charts the last hour, at most a day). */
export const MINUTELY_RETENTION_MS = 48 * 3_600_000
/** How often one instance prunes validation_client_minutely (any instance may; the delete is idempotent). */
const PRUNE_INTERVAL_MS = 10 * 60_000

/** Validations of one serial with one code in one minute (epoch ms of its start). */
interface MinuteCount { serialId: string, clientId: string, minute: number, code: string, count: number }

export function createValidationRecorder (db: Db, onError: (error: unknown) => void): ValidationRecorder {
  // Keyed by minute: the hourly tables are summed from it at flush time, the minutely one too.
  let stats = new Map<string, MinuteCount>()
  let seen = new Map<string, { serialId: string, deviceId: string, at: Date, count: number, lease: number | null }>()
  let flushing: Promise<void> = Promise.resolve()
  let prunedAt = 0

  /** Sums minute counts under a coarser key (one statement may not update a row twice). */
  function rollUp<K extends object> (rows: Iterable<MinuteCount>, key: (r: MinuteCount) => string, make: (r: MinuteCount) => K): Array<K & { count: number }> {
    const out = new Map<string, K & { count: number }>()
    for (const r of rows) {
      const k = key(r)
      const entry = out.get(k)
      if (entry) entry.count += r.count
      else out.set(k, { ...make(r), count: r.count })
    }
    return [...out.values()]
  }

  async function write (): Promise<void> {
    if (stats.size === 0 && seen.size === 0) return
    const hourOf = (minute: number) => Math.floor(minute / 3_600_000) * 3_600_000
    const s = rollUp(stats.values(), (r) => `${r.serialId}|${hourOf(r.minute)}|${r.code}`, (r) => ({ serialId: r.serialId, clientId: r.clientId, hour: new Date(hourOf(r.minute)), code: r.code }))
    const m = rollUp(stats.values(), (r) => `${r.clientId}|${r.minute}|${r.code}`, (r) => ({ clientId: r.clientId, minute: r.minute, code: r.code }))
    const d = [...seen.values()]
    stats = new Map()
    seen = new Map()
    try {
      for (let i = 0; i < s.length; i += 1000) {
        const chunk = s.slice(i, i + 1000)
        await db.execute(sql`
          insert into validation_stats (serial_id, client_id, hour, code, count)
          values ${sql.join(chunk.map((r) => sql`(${r.serialId}, ${r.clientId}, ${r.hour.toISOString()}::timestamptz, ${r.code}, ${r.count})`), sql`, `)}
          on conflict (serial_id, hour, code) do update set count = validation_stats.count + excluded.count`)
      }
      // The client-wide rollup of the same counts (analytics read it for client-scoped queries).
      const perClient = new Map<string, { clientId: string, hour: Date, code: string, count: number }>()
      for (const r of s) {
        const key = `${r.clientId}|${r.hour.getTime()}|${r.code}`
        const entry = perClient.get(key)
        if (entry) entry.count += r.count
        else perClient.set(key, { clientId: r.clientId, hour: r.hour, code: r.code, count: r.count })
      }
      const c = [...perClient.values()].sort((a, b) => a.clientId.localeCompare(b.clientId) || a.hour.getTime() - b.hour.getTime() || a.code.localeCompare(b.code))
      for (let i = 0; i < c.length; i += 1000) {
        await db.execute(sql`
          insert into validation_client_hourly (client_id, hour, code, count)
          values ${sql.join(c.slice(i, i + 1000).map((r) => sql`(${r.clientId}, ${r.hour.toISOString()}::timestamptz, ${r.code}, ${r.count})`), sql`, `)}
          on conflict (client_id, hour, code) do update set count = validation_client_hourly.count + excluded.count`)
      }
      // Per client and minute (the console's validations-per-minute chart), sorted like the above.
      m.sort((a, b) => a.clientId.localeCompare(b.clientId) || a.minute - b.minute || a.code.localeCompare(b.code))
      for (let i = 0; i < m.length; i += 1000) {
        await db.execute(sql`
          insert into validation_client_minutely (client_id, minute, code, count)
          values ${sql.join(m.slice(i, i + 1000).map((r) => sql`(${r.clientId}, ${new Date(r.minute).toISOString()}::timestamptz, ${r.code}, ${r.count})`), sql`, `)}
          on conflict (client_id, minute, code) do update set count = validation_client_minutely.count + excluded.count`)
      }
      if (m.length > 0 && Date.now() - prunedAt >= PRUNE_INTERVAL_MS) {
        prunedAt = Date.now()
        // By the database's clock (not the recorder's `now`, which tests may move): idempotent, so
        // several instances pruning at once only repeat an empty delete.
        await db.execute(sql`delete from validation_client_minutely where minute < now() - ${sql.raw(`interval '${MINUTELY_RETENTION_MS / 1000} seconds'`)}`)
      }
      // Sorted, so two flushers (or a flusher and a cull) lock device rows in the same order.
      d.sort((a, b) => a.serialId.localeCompare(b.serialId) || a.deviceId.localeCompare(b.deviceId))
      for (let i = 0; i < d.length; i += 1000) {
        const chunk = d.slice(i, i + 1000)
        // A lease is only ever extended, and only while the device still holds its slot: a
        // culled or released device is not brought back by a renewal that was in flight.
        await db.execute(sql`
          update devices set last_seen_at = greatest(devices.last_seen_at, v.at), validation_count = devices.validation_count + v.n,
            lease_expires_at = case when v.lease is not null and devices.active and devices.lease_expires_at is not null
              then greatest(devices.lease_expires_at, v.lease) else devices.lease_expires_at end
          from (values ${sql.join(chunk.map((r) => sql`(${r.serialId}, ${r.deviceId}, ${r.at.toISOString()}::timestamptz, ${r.count}::bigint, ${r.lease === null ? null : new Date(r.lease).toISOString()}::timestamptz)`), sql`, `)}) as v(serial_id, device_id, at, n, lease)
          where devices.serial_id = v.serial_id and devices.device_id = v.device_id`)
      }
    } catch (error) {
      onError(error)
    }
  }

  function touch (serialId: string, deviceId: string, now: Date, count: number, lease: number | null): void {
    const dkey = `${serialId}|${deviceId}`
    const device = seen.get(dkey)
    if (device) {
      device.count += count
      device.at = now
      if (lease !== null) device.lease = Math.max(device.lease ?? 0, lease)
    } else seen.set(dkey, { serialId, deviceId, at: now, count, lease })
  }

  return {
    validation (serial, deviceId, code, now, lease = null) {
      const minute = Math.floor(now.getTime() / 60_000) * 60_000
      const key = `${serial.id}|${minute}|${code}`
      const entry = stats.get(key)
      if (entry) entry.count++
      else stats.set(key, { serialId: serial.id, clientId: serial.clientId, minute, code, count: 1 })
      if (deviceId) touch(serial.id, deviceId, now, 1, lease)
    },
    lease (serial, deviceId, now, lease) {
      touch(serial.id, deviceId, now, 0, lease)
    },
    flush () {
      flushing = flushing.then(write)
      return flushing
    }
  }
}
