// Business analytics over the usage log and the validation rollups (validation_stats, per client
// and hour or minute), computed in SQL on the read database (DATABASE_READ_URL when set).
import { sql } from 'drizzle-orm'
import { z } from 'zod'
import { canSeeClient, clientScope, NO_CLIENT, type Actor } from '../../kernel/access.ts'
import { queryRows } from '../../infra/database.ts'
import type { Deps } from '../deps.ts'
import { FeatureDisabledError, NotFoundError, ValidationError } from '../../kernel/errors.ts'
import { dateInput, parseInput } from '../../kernel/input.ts'
import { maskSerialNumber } from '../serials/serial-number.ts'
import type { UsageService } from '../usage/usage-service.ts'

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

/** Why a serial looks shared: its own figures next to its client's median over the window. */
export interface SharingEvidence {
  windowDays: number
  distinctIps: number
  clientMedianIps: number
  activations: number
  deactivations: number
  clientMedianChurn: number
  distinctDevices: number
  usageEvents: number
  maxDevices: number
  serialsCompared: number
}

export interface SharingSignal { serialId: string, maskedNumber: string, score: number, evidence: SharingEvidence }

/**
 * 0–100: ten points for each multiple above the client's median, in distinct usage IPs and in
 * device churn (activations + releases), capped at 100. A serial at its client's norm scores 0.
 */
export function sharingScore (e: Pick<SharingEvidence, 'distinctIps' | 'clientMedianIps' | 'activations' | 'deactivations' | 'clientMedianChurn'>): number {
  const ipExcess = Math.max(0, e.distinctIps / Math.max(1, e.clientMedianIps) - 1)
  const churnExcess = Math.max(0, (e.activations + e.deactivations) / Math.max(1, e.clientMedianChurn) - 1)
  return Math.min(100, Math.round(10 * (ipExcess + churnExcess)))
}

/** Validations of one code in one minute (UTC). */
export interface MinuteCodeCount { minute: Date, code: string, count: number }

/** Usage of one feature (null = events that named none) over a window. */
export interface FeatureUsage { feature: string | null, events: number, quantity: number }

/** Usage per feature, and the newest usage seq the figures include (where live updates go on from). */
export interface UsageByFeature { since: Date, throughSeq: number, features: FeatureUsage[] }

/** Longest usageByFeature window: a week of raw usage events (there is no per-feature rollup). */
export const MAX_FEATURE_HOURS = 168
/** Features listed at most, the largest quantities first. */
export const MAX_FEATURES = 100
/** Longest validationsPerMinute window: a day (the minute table keeps 48 hours). */
export const MAX_MINUTES = 1440

const minutesInput = z.object({
  clientId: z.string().max(64).optional().nullable(),
  minutes: z.number().int().min(1, 'must be between 1 and 1440').max(MAX_MINUTES, 'must be between 1 and 1440').optional().nullable()
})

const featureInput = z.object({
  clientId: z.string().max(64).optional().nullable(),
  hours: z.number().int().min(1, `must be between 1 and ${MAX_FEATURE_HOURS}`).max(MAX_FEATURE_HOURS, `must be between 1 and ${MAX_FEATURE_HOURS}`).optional().nullable()
})

const sharingInput = z.object({
  clientId: z.string().max(64),
  days: z.number().int().min(1).max(365).optional().nullable(),
  first: z.number().int().min(1).max(100).optional().nullable()
})

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
/** Largest window per granularity, so one answer holds at most ~750 buckets. */
const MAX_RANGE_MS = { HOUR: 31 * DAY_MS, DAY: 750 * DAY_MS }

const patternsInput = z.object({
  clientId: z.string().max(64).optional().nullable(),
  serialId: z.string().max(64).optional().nullable(),
  granularity: z.enum(['HOUR', 'DAY']),
  since: dateInput.optional().nullable(),
  until: dateInput.optional().nullable()
})

const n = (value: unknown) => Number(value ?? 0)

export function createAnalyticsService (deps: Deps & { usage: Pick<UsageService, 'watermark'> }) {
  const { database, clock } = deps
  const db = database.readDb

  // On the primary: a client created a moment ago exists even while the replica lags behind.
  async function requireClient (actor: Actor, clientId: string): Promise<void> {
    const [row] = await queryRows<{ id: string }>(database.db, sql`select id from clients where id = ${clientId}`)
    if (!row || !canSeeClient(actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
  }

  /**
   * The client an actor's query covers: the one named (when visible), a MANAGER's own without one,
   * and null (every client) for an ADMIN or AUDITOR without one.
   */
  async function scopeOf (actor: Actor, clientId: string | null | undefined): Promise<string | null> {
    if (clientId) {
      await requireClient(actor, clientId)
      return clientId
    }
    const scope = clientScope(actor)
    if (scope === NO_CLIENT) throw new NotFoundError('client not found')
    return scope
  }

  return {
    /**
     * Validations per minute and code over the last `minutes` minutes (default 60), the current
     * minute included; only minutes and codes with validations. From validation_client_minutely,
     * which the flusher writes every 2 s.
     */
    async validationsPerMinute (actor: Actor, input: unknown): Promise<MinuteCodeCount[]> {
      const data = parseInput(minutesInput, input)
      const clientId = await scopeOf(actor, data.clientId)
      const minutes = data.minutes ?? 60
      const from = new Date((Math.floor(clock().getTime() / 60_000) - (minutes - 1)) * 60_000).toISOString()
      const rows = await queryRows<{ minute: string | Date, code: string, count: string }>(db, clientId
        ? sql`select minute, code, count from validation_client_minutely
            where client_id = ${clientId} and minute >= ${from}::timestamptz order by minute, code`
        : sql`select minute, code, sum(count) as count from validation_client_minutely
            where minute >= ${from}::timestamptz group by minute, code order by minute, code`)
      return rows.map((r) => ({ minute: new Date(r.minute), code: r.code, count: n(r.count) }))
    },

    /**
     * Usage per feature over the last `hours` hours (default 24), largest quantity first, counting
     * the rows up to throughSeq: a page shows these and then adds the usageRecorded events with a
     * larger seq (subscribe with after: throughSeq). throughSeq is the usage watermark, not the
     * highest stored seq: a row below that may still commit, and would be in neither. On the
     * primary, which holds every row up to the watermark (a replica may not yet).
     */
    async usageByFeature (actor: Actor, input: unknown): Promise<UsageByFeature> {
      const data = parseInput(featureInput, input)
      const clientId = await scopeOf(actor, data.clientId)
      const since = new Date(clock().getTime() - (data.hours ?? 24) * HOUR_MS)
      const scope = clientId ? sql`client_id = ${clientId} and` : sql``
      const through = await deps.usage.watermark()
      const rows = await queryRows<{ through_seq: string | number, feature: string | null, events: string | null, quantity: string | null }>(database.db, sql`
        with f as (
          select feature, count(*) as events, sum(quantity) as quantity from usage_events
          where ${scope} recorded_at >= ${since.toISOString()}::timestamptz and seq <= ${through}
          group by feature order by sum(quantity) desc, count(*) desc, feature nulls last limit ${MAX_FEATURES}
        )
        select s.through_seq, f.feature, f.events, f.quantity
        from (select ${through}::bigint as through_seq) s left join f on true
        order by f.quantity desc nulls last, f.events desc, f.feature nulls last`)
      return {
        since,
        throughSeq: n(rows[0]?.through_seq),
        features: rows.filter((r) => r.events !== null).map((r) => ({ feature: r.feature, events: n(r.events), quantity: n(r.quantity) }))
      }
    },

    /** Serials of a client whose usage looks shared (FEATURE_ADVANCED_ANALYTICS), highest first. */
    async licenseSharing (actor: Actor, input: unknown): Promise<SharingSignal[]> {
      if (!deps.config.features.advancedAnalytics) throw new FeatureDisabledError('FEATURE_ADVANCED_ANALYTICS')
      const data = parseInput(sharingInput, input)
      await requireClient(actor, data.clientId)
      const days = data.days ?? 30
      const since = new Date(clock().getTime() - days * DAY_MS).toISOString()
      const rows = await queryRows<Record<string, string | number | null>>(db, sql`
        with usage as (
          select serial_id, count(distinct ip) as ips, count(distinct device_id) as devices, count(*) as events
          from usage_events where client_id = ${data.clientId} and recorded_at >= ${since}::timestamptz
          group by serial_id
        ), churn as (
          select d.serial_id,
            count(*) filter (where d.first_seen_at >= ${since}::timestamptz) as activations,
            count(*) filter (where d.deactivated_at >= ${since}::timestamptz) as deactivations
          from devices d join serials s on s.id = d.serial_id
          where s.client_id = ${data.clientId} and (d.first_seen_at >= ${since}::timestamptz or d.deactivated_at >= ${since}::timestamptz)
          group by d.serial_id
        ), per_serial as (
          select coalesce(u.serial_id, c.serial_id) as serial_id, coalesce(u.ips, 0) as ips, coalesce(u.devices, 0) as devices,
            coalesce(u.events, 0) as events, coalesce(c.activations, 0) as activations, coalesce(c.deactivations, 0) as deactivations
          from usage u full join churn c on c.serial_id = u.serial_id
        ), norm as (
          select percentile_cont(0.5) within group (order by ips) as ips,
            percentile_cont(0.5) within group (order by activations + deactivations) as churn, count(*) as serials
          from per_serial
        )
        select p.serial_id, p.ips, p.devices, p.events, p.activations, p.deactivations,
          n.ips as norm_ips, n.churn as norm_churn, n.serials as norm_serials, s.number_tail, s.max_usage_count
        from per_serial p cross join norm n join serials s on s.id = p.serial_id`)
      const signals = rows.map((r): SharingSignal => {
        const evidence: SharingEvidence = {
          windowDays: days,
          distinctIps: n(r.ips),
          clientMedianIps: n(r.norm_ips),
          activations: n(r.activations),
          deactivations: n(r.deactivations),
          clientMedianChurn: n(r.norm_churn),
          distinctDevices: n(r.devices),
          usageEvents: n(r.events),
          maxDevices: n(r.max_usage_count),
          serialsCompared: n(r.norm_serials)
        }
        return { serialId: String(r.serial_id), maskedNumber: maskSerialNumber(String(r.number_tail)), score: sharingScore(evidence), evidence }
      })
      return signals.filter((s) => s.score > 0)
        .sort((a, b) => b.score - a.score || a.serialId.localeCompare(b.serialId))
        .slice(0, data.first ?? 20)
    },

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
        select code, sum(count) as count from validation_client_hourly
        where client_id = ${clientId} and hour >= ${new Date(now.getTime() - 24 * HOUR_MS).toISOString()}::timestamptz
        group by code order by code`)
      // 30 days to the day (UTC): the daily rollup, from the start of the day 30 days ago.
      const since30 = new Date(now.getTime() - 30 * DAY_MS).toISOString()
      const [usage] = await queryRows<{ events: string, quantity: string }>(db, sql`
        select coalesce(sum(events), 0) as events, coalesce(sum(quantity), 0) as quantity from usage_daily
        where client_id = ${clientId} and day >= date_trunc('day', ${since30}::timestamptz, 'UTC')`)
      const top = await queryRows<{ serial_id: string, number_tail: string, events: string, quantity: string }>(db, sql`
        select u.serial_id, s.number_tail, u.events, u.quantity from (
          select serial_id, sum(events) as events, sum(quantity) as quantity from usage_daily
          where client_id = ${clientId} and day >= date_trunc('day', ${since30}::timestamptz, 'UTC')
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
      const from = since.toISOString()
      const to = until.toISOString()
      let usage: Array<{ bucket: string | Date, events: string, quantity: string, devices: string }>
      let validations: Array<{ bucket: string | Date, count: string }>
      if (data.serialId) {
        // One serial: its raw rows through the (serial_id, time) indexes.
        usage = await queryRows(db, sql`
          select date_trunc(${unit}, recorded_at, 'UTC') as bucket, count(*) as events, sum(quantity) as quantity, count(distinct device_id) as devices
          from usage_events where serial_id = ${data.serialId} and recorded_at >= ${from}::timestamptz and recorded_at < ${to}::timestamptz
          group by 1`)
        validations = await queryRows(db, sql`
          select date_trunc(${unit}, hour, 'UTC') as bucket, sum(count) as count
          from validation_stats where serial_id = ${data.serialId} and hour >= date_trunc('hour', ${from}::timestamptz) and hour < ${to}::timestamptz
          group by 1`)
      } else {
        // A whole client: the rollups (hourly usage and validations; device-days for DAY).
        // Usage buckets are whole hours: an event counts in the bucket of its hour.
        const totals = await queryRows<{ bucket: string | Date, events: string, quantity: string }>(db, sql`
          select date_trunc(${unit}, hour, 'UTC') as bucket, sum(events) as events, sum(quantity) as quantity
          from usage_client_hourly where client_id = ${clientId} and hour >= date_trunc('hour', ${from}::timestamptz) and hour < ${to}::timestamptz
          group by 1`)
        const devices = data.granularity === 'DAY'
          ? await queryRows<{ bucket: string | Date, devices: string }>(db, sql`
              select day as bucket, count(*) as devices from usage_device_days
              where client_id = ${clientId} and day >= date_trunc('day', ${from}::timestamptz, 'UTC') and day < ${to}::timestamptz
              group by 1`)
          : await queryRows<{ bucket: string | Date, devices: string }>(db, sql`
              select bucket, count(*) as devices from (
                select distinct date_trunc('hour', recorded_at, 'UTC') as bucket, serial_id, device_id
                from usage_events where client_id = ${clientId} and recorded_at >= date_trunc('hour', ${from}::timestamptz) and recorded_at < ${to}::timestamptz
              ) d group by 1`)
        const devicesAt = new Map(devices.map((d) => [new Date(d.bucket).getTime(), d.devices]))
        usage = totals.map((r) => ({ ...r, devices: devicesAt.get(new Date(r.bucket).getTime()) ?? '0' }))
        validations = await queryRows(db, sql`
          select date_trunc(${unit}, hour, 'UTC') as bucket, sum(count) as count
          from validation_client_hourly where client_id = ${clientId} and hour >= date_trunc('hour', ${from}::timestamptz) and hour < ${to}::timestamptz
          group by 1`)
      }
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
