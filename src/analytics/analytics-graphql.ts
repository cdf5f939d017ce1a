import { builder } from '../graphql/builder.ts'
import type { ClientStatistics, SharingEvidence, SharingSignal, UsageBucket } from './analytics-service.ts'

const SerialsByStatus = builder.objectRef<ClientStatistics['serialsByStatus']>('SerialsByStatus').implement({
  fields: (t) => ({
    active: t.exposeInt('active'),
    suspended: t.exposeInt('suspended'),
    revoked: t.exposeInt('revoked'),
    expired: t.exposeInt('expired')
  })
})
const CodeCount = builder.objectRef<{ code: string, count: number }>('ValidationCodeCount').implement({
  fields: (t) => ({ code: t.exposeString('code'), count: t.exposeInt('count') })
})
const UsageTotals = builder.objectRef<ClientStatistics['usageLast30Days']>('UsageTotals').implement({
  fields: (t) => ({ events: t.exposeInt('events'), quantity: t.exposeInt('quantity') })
})
const TopSerial = builder.objectRef<ClientStatistics['topSerials'][number]>('TopSerial').implement({
  fields: (t) => ({
    serialId: t.exposeID('serialId'),
    maskedNumber: t.exposeString('maskedNumber'),
    events: t.exposeInt('events'),
    quantity: t.exposeInt('quantity')
  })
})

const ClientStatisticsRef = builder.objectRef<ClientStatistics>('ClientStatistics').implement({
  fields: (t) => ({
    clientId: t.exposeID('clientId'),
    serialsTotal: t.exposeInt('serialsTotal'),
    serialsByStatus: t.field({ type: SerialsByStatus, resolve: (s) => s.serialsByStatus }),
    activeDevices: t.exposeInt('activeDevices'),
    validationsLast24h: t.field({ type: [CodeCount], description: 'From the hourly rollup (flushed every 2 s)', resolve: (s) => s.validationsLast24h }),
    usageLast30Days: t.field({ type: UsageTotals, resolve: (s) => s.usageLast30Days }),
    topSerials: t.field({ type: [TopSerial], description: 'Top 5 by usage quantity over 30 days', resolve: (s) => s.topSerials })
  })
})

const Granularity = builder.enumType('Granularity', { values: ['HOUR', 'DAY'] as const })

const UsageBucketRef = builder.objectRef<UsageBucket>('UsageBucket').implement({
  fields: (t) => ({
    bucket: t.expose('bucket', { type: 'DateTime', description: 'Start of the hour or day (UTC)' }),
    validations: t.exposeInt('validations'),
    usageEvents: t.exposeInt('usageEvents'),
    quantity: t.exposeInt('quantity'),
    distinctDevices: t.exposeInt('distinctDevices', { description: 'Devices that recorded usage in the bucket' })
  })
})

const SharingEvidenceRef = builder.objectRef<SharingEvidence>('LicenseSharingEvidence').implement({
  description: 'A serial\'s figures over the window next to its client\'s median (all serials with activity in the window)',
  fields: (t) => ({
    windowDays: t.exposeInt('windowDays'),
    distinctIps: t.exposeInt('distinctIps', { description: 'Distinct addresses that recorded usage' }),
    clientMedianIps: t.exposeFloat('clientMedianIps'),
    activations: t.exposeInt('activations', { description: 'Devices that took a slot in the window' }),
    deactivations: t.exposeInt('deactivations', { description: 'Devices released in the window' }),
    clientMedianChurn: t.exposeFloat('clientMedianChurn', { description: 'Median of activations + deactivations' }),
    distinctDevices: t.exposeInt('distinctDevices', { description: 'Devices that recorded usage' }),
    usageEvents: t.exposeInt('usageEvents'),
    maxUsageCount: t.exposeInt('maxUsageCount'),
    serialsCompared: t.exposeInt('serialsCompared')
  })
})

const SharingSignalRef = builder.objectRef<SharingSignal>('LicenseSharingSignal').implement({
  fields: (t) => ({
    serialId: t.exposeID('serialId'),
    maskedNumber: t.exposeString('maskedNumber'),
    score: t.exposeInt('score', { description: '0–100: 10 points per multiple above the client median in distinct IPs and in device churn' }),
    evidence: t.field({ type: SharingEvidenceRef, resolve: (s) => s.evidence })
  })
})

builder.queryFields((t) => ({
  licenseSharing: t.field({
    type: [SharingSignalRef],
    authScopes: { authenticated: true },
    description: 'Serials whose usage looks shared, highest score first (score > 0 only). Needs FEATURE_ADVANCED_ANALYTICS.',
    args: {
      clientId: t.arg.id({ required: true }),
      days: t.arg.int({ description: 'Window in days (default 30, at most 365)' }),
      first: t.arg.int({ description: 'At most this many (default 20, at most 100)' })
    },
    resolve: (_root, args, ctx) => ctx.services.analytics.licenseSharing(ctx.actor, args)
  }),
  clientStatistics: t.field({
    type: ClientStatisticsRef,
    authScopes: { authenticated: true },
    args: { clientId: t.arg.id({ required: true }) },
    resolve: (_root, { clientId }, ctx) => ctx.services.analytics.clientStatistics(ctx.actor, clientId)
  }),
  usagePatterns: t.field({
    type: [UsageBucketRef],
    authScopes: { authenticated: true },
    description: 'Buckets with activity only; defaults: until = now, since = until − 1 day (HOUR) or 30 days (DAY)',
    args: {
      clientId: t.arg.id(),
      serialId: t.arg.id(),
      granularity: t.arg({ type: Granularity, required: true }),
      since: t.arg({ type: 'DateTime' }),
      until: t.arg({ type: 'DateTime' })
    },
    resolve: (_root, args, ctx) => ctx.services.analytics.usagePatterns(ctx.actor, args)
  })
}))
