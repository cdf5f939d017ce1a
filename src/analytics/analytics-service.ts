// Business analytics over the usage log and the hourly validation rollup (validation_stats),
// computed in SQL on the read database (DATABASE_READ_URL when set).
import { sql } from 'drizzle-orm'
import { z } from 'zod'
import { canSeeClient, type Actor } from '../platform/auth.ts'
import { queryRows } from '../platform/database.ts'
import type { Deps } from '../platform/deps.ts'
import { NotFoundError, ValidationError } from '../platform/errors.ts'
import { parseInput } from '../platform/validation.ts'
import { maskSerialNumber } from '../serials/serial-number.ts'

export interface ClientStatistics {
  clientId: string
  serialsTotal: number
  serialsByStatus: { active: number, suspended: number, revoked: number, expired: number }
  activeDevices: number
  validationsLast24h: Array<{ code: string, count: number }>
  usageLast30Days: { events: number, quantity: number }
  topSerials: Array<{ serialId: string, maskedNumber: string, events: number, quantity: number }>
}

export interface UsageBucket {
  bucket: Date
  validations: number
  usageEvents: number
  quantity: number
  distinctDevices: number
}

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
/** Largest window per granularity, so one answer holds at most ~750 buckets. */
const MAX_RANGE_MS = { HOUR: 31 * DAY_MS, DAY: 750 * DAY_MS }

const patternsInput = z.object({
  clientId: z.string().max(64).optional().nullable(),
  serialId: z.string().max(64).optional().nullable(),
  granularity: z.enum(['HOUR', 'DAY']),
  since: z.coerce.date().optional().nullable(),
  until: z.coerce.date().optional().nullable()
})

const n = (value: unknown) => Number(value ?? 0)

export function createAnalyticsService (deps: Deps) {
  const { database, clock } = deps
  const db = database.readDb

  async function requireClient (actor: Actor, clientId: string): Promise<void> {
    const [row] = await queryRows<{ id: string }>(db, sql`select id from clients where id = ${clientId}`)
    if (!row || !canSeeClient(actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
  }

  return {
    async clientStatistics (actor: Actor, clientId: string): Promise<ClientStatistics> {
      await requireClient(actor, clientId)
      const now = clock()
      const [serials] = await queryRows<Record<string, string>>(db, sql`
        select count(*) as total,
          count(*) filter (where status = 'ACTIVE' and (expires_at is null or expires_at > ${now.toISOString()}::timestamptz)) as active,
          count(*) filter (where status = 'SUSPENDED') as suspended,
          count(*) filter (where status = 'REVOKED') as revoked,
          count(*) filter (where status = 'ACTIVE' and expires_at <= ${now.toISOString()}::timestamptz) as expired,
          coalesce(sum(active_devices), 0) as devices
        from serials where client_id = ${clientId}`)
      const validations = await queryRows<{ code: string, count: string }>(db, sql`
        select code, sum(count) as count from validation_stats
        where client_id = ${clientId} and hour >= ${new Date(now.getTime() - 24 * HOUR_MS).toISOString()}::timestamptz
        group by code order by code`)
      const since30 = new Date(now.getTime() - 30 * DAY_MS).toISOString()
      const [usage] = await queryRows<{ events: string, quantity: string }>(db, sql`
        select count(*) as events, coalesce(sum(quantity), 0) as quantity from usage_events
        where client_id = ${clientId} and recorded_at >= ${since30}::timestamptz`)
      const top = await queryRows<{ serial_id: string, number_tail: string, events: string, quantity: string }>(db, sql`
        select u.serial_id, s.number_tail, u.events, u.quantity from (
          select serial_id, count(*) as events, sum(quantity) as quantity from usage_events
          where client_id = ${clientId} and recorded_at >= ${since30}::timestamptz
          group by serial_id order by sum(quantity) desc, serial_id limit 5
        ) u join serials s on s.id = u.serial_id order by u.quantity desc, u.serial_id`)
      return {
        clientId,
        serialsTotal: n(serials?.total),
        serialsByStatus: { active: n(serials?.active), suspended: n(serials?.suspended), revoked: n(serials?.revoked), expired: n(serials?.expired) },
        activeDevices: n(serials?.devices),
        validationsLast24h: validations.map((v) => ({ code: v.code, count: n(v.count) })),
        usageLast30Days: { events: n(usage?.events), quantity: n(usage?.quantity) },
        topSerials: top.map((r) => ({ serialId: r.serial_id, maskedNumber: maskSerialNumber(r.number_tail), events: n(r.events), quantity: n(r.quantity) }))
      }
    },

    async usagePatterns (actor: Actor, input: unknown): Promise<UsageBucket[]> {
      const data = parseInput(patternsInput, input)
      if (!data.clientId && !data.serialId) throw new ValidationError('Validation failed', [{ field: 'clientId', message: 'clientId or serialId is required' }])
      let clientId = data.clientId ?? null
      if (data.serialId) {
        const [serial] = await queryRows<{ client_id: string }>(db, sql`select client_id from serials where id = ${data.serialId}`)
        if (!serial || !canSeeClient(actor, serial.client_id) || (clientId && clientId !== serial.client_id)) throw new NotFoundError(`serial ${data.serialId} not found`)
        clientId = serial.client_id
      } else {
        await requireClient(actor, clientId!)
      }
      const until = data.until ?? clock()
      const since = data.since ?? new Date(until.getTime() - (data.granularity === 'HOUR' ? DAY_MS : 30 * DAY_MS))
      if (since >= until) throw new ValidationError('Validation failed', [{ field: 'since', message: 'must be before until' }])
      if (until.getTime() - since.getTime() > MAX_RANGE_MS[data.granularity]) {
        throw new ValidationError('Validation failed', [{ field: 'since', message: `range too long for ${data.granularity} buckets` }])
      }
      const unit = data.granularity === 'HOUR' ? sql.raw('\'hour\'') : sql.raw('\'day\'')
      const scope = data.serialId ? sql`serial_id = ${data.serialId}` : sql`client_id = ${clientId}`
      const usage = await queryRows<{ bucket: string | Date, events: string, quantity: string, devices: string }>(db, sql`
        select date_trunc(${unit}, recorded_at, 'UTC') as bucket, count(*) as events, sum(quantity) as quantity, count(distinct device_id) as devices
        from usage_events where ${scope} and recorded_at >= ${since.toISOString()}::timestamptz and recorded_at < ${until.toISOString()}::timestamptz
        group by 1`)
      const validations = await queryRows<{ bucket: string | Date, count: string }>(db, sql`
        select date_trunc(${unit}, hour, 'UTC') as bucket, sum(count) as count
        from validation_stats where ${scope} and hour >= date_trunc('hour', ${since.toISOString()}::timestamptz) and hour < ${until.toISOString()}::timestamptz
        group by 1`)
      const buckets = new Map<number, UsageBucket>()
      const at = (value: string | Date) => {
        const time = new Date(value).getTime()
        let bucket = buckets.get(time)
        if (!bucket) { bucket = { bucket: new Date(time), validations: 0, usageEvents: 0, quantity: 0, distinctDevices: 0 }; buckets.set(time, bucket) }
        return bucket
      }
      for (const row of usage) Object.assign(at(row.bucket), { usageEvents: n(row.events), quantity: n(row.quantity), distinctDevices: n(row.devices) })
      for (const row of validations) at(row.bucket).validations = n(row.count)
      return [...buckets.values()].sort((a, b) => a.bucket.getTime() - b.bucket.getTime())
    }
  }
}

export type AnalyticsService = ReturnType<typeof createAnalyticsService>
