import { builder } from '../../graphql/builder.ts'
import { MAX_FEATURE_HOURS, MAX_FEATURES, MAX_MINUTES, type ClientStatistics, type FeatureUsage, type MinuteCodeCount, type SharingEvidence, type SharingSignal, type UsageBucket, type UsageByFeature } from './analytics-service.ts'

const SerialsByStatus = builder.objectRef<ClientStatistics['serialsByStatus']>('SerialsByStatus').implement({
  description: 'Serial counts by status',
  fields: (t) => ({
    active: t.exposeInt('active', { description: 'Serials that validate' }),
    suspended: t.exposeInt('suspended', { description: 'Suspended serials' }),
    revoked: t.exposeInt('revoked', { description: 'Revoked serials' }),
    expired: t.exposeInt('expired', { description: 'Serials past their expiry' })
  })
})
const CodeCount = builder.objectRef<{ code: string, count: number }>('ValidationCodeCount').implement({
  description: 'How many validations ended with one code',
  fields: (t) => ({
    code: t.exposeString('code', { description: 'A ValidationCode value' }),
    count: t.exposeInt('count', { description: 'Validations with this code' })
  })
})
const UsageTotals = builder.objectRef<ClientStatistics['usageLast30Days']>('UsageTotals').implement({
  description: 'Usage summed over a period',
  fields: (t) => ({
    events: t.exposeInt('events', { description: 'Usage events recorded' }),
    quantity: t.exposeInt('quantity', { description: 'Sum of their quantities' })
  })
})
const TopSerial = builder.objectRef<ClientStatistics['topSerials'][number]>('TopSerial').implement({
  description: 'A serial among the most used of its client',
  fields: (t) => ({
    serialId: t.exposeID('serialId', { description: 'The serial (ser_…)' }),
    maskedNumber: t.exposeString('maskedNumber', { description: 'Its masked number' }),
    events: t.exposeInt('events', { description: 'Usage events over 30 days' }),
    quantity: t.exposeInt('quantity', { description: 'Sum of their quantities' })
  })
})

const ClientStatisticsRef = builder.objectRef<ClientStatistics>('ClientStatistics').implement({
  description: 'A client at a glance',
  fields: (t) => ({
    clientId: t.exposeID('clientId', { description: 'The client (cli_…)' }),
    serialsTotal: t.exposeInt('serialsTotal', { description: 'Serials of the client' }),
    serialsByStatus: t.field({ description: 'The same serials by status', type: SerialsByStatus, resolve: (s) => s.serialsByStatus }),
    activeDevices: t.exposeInt('activeDevices', { description: 'Devices holding a slot now, over all serials' }),
    validationsLast24h: t.field({ type: [CodeCount], description: 'From the hourly rollup (flushed every 2 s)', resolve: (s) => s.validationsLast24h }),
    usageLast30Days: t.field({ description: 'Usage over the last 30 days', type: UsageTotals, resolve: (s) => s.usageLast30Days }),
    topSerials: t.field({ type: [TopSerial], description: 'Top 5 by usage quantity over 30 days', resolve: (s) => s.topSerials })
  })
})

const Granularity = builder.enumType('Granularity', {
  description: 'Bucket size of usagePatterns',
  values: {
    HOUR: { description: 'One bucket per hour (UTC)' },
    DAY: { description: 'One bucket per day (UTC)' }
  } as const
})

const UsageBucketRef = builder.objectRef<UsageBucket>('UsageBucket').implement({
  description: 'Activity in one hour or day',
  fields: (t) => ({
    bucket: t.expose('bucket', { type: 'DateTime', description: 'Start of the hour or day (UTC)' }),
    validations: t.exposeInt('validations', { description: 'Validations in the bucket' }),
    usageEvents: t.exposeInt('usageEvents', { description: 'Usage events in the bucket' }),
    quantity: t.exposeInt('quantity', { description: 'Sum of their quantities' }),
    distinctDevices: t.exposeInt('distinctDevices', { description: 'Devices that recorded usage in the bucket' })
  })
})

const SharingEvidenceRef = builder.objectRef<SharingEvidence>('LicenseSharingEvidence').implement({
  description: 'A serial\'s figures over the window next to its client\'s median (all serials with activity in the window)',
  fields: (t) => ({
    windowDays: t.exposeInt('windowDays', { description: 'Days looked back' }),
    distinctIps: t.exposeInt('distinctIps', { description: 'Distinct addresses that recorded usage' }),
    clientMedianIps: t.exposeFloat('clientMedianIps', { description: 'Median of distinctIps over the client\'s serials' }),
    activations: t.exposeInt('activations', { description: 'Devices that took a slot in the window' }),
    deactivations: t.exposeInt('deactivations', { description: 'Devices released in the window' }),
    clientMedianChurn: t.exposeFloat('clientMedianChurn', { description: 'Median of activations + deactivations' }),
    distinctDevices: t.exposeInt('distinctDevices', { description: 'Devices that recorded usage' }),
    usageEvents: t.exposeInt('usageEvents', { description: 'Usage events in the window' }),
    maxDevices: t.exposeInt('maxDevices', { description: 'The serial\'s device limit' }),
    maxUsageCount: t.exposeInt('maxDevices', { description: 'The serial\'s device limit', deprecationReason: 'Use maxDevices (the same number); maxUsageCount goes in a later release' }),
    serialsCompared: t.exposeInt('serialsCompared', { description: 'Serials of the client with activity in the window' })
  })
})

const SharingSignalRef = builder.objectRef<SharingSignal>('LicenseSharingSignal').implement({
  description: 'A serial whose usage looks shared, with the evidence',
  fields: (t) => ({
    serialId: t.exposeID('serialId', { description: 'The serial (ser_…)' }),
    maskedNumber: t.exposeString('maskedNumber', { description: 'Its masked number' }),
    score: t.exposeInt('score', { description: 'From 0 to 100: 10 points per multiple above the client median in distinct IPs and in device churn' }),
    evidence: t.field({ description: 'The figures behind the score', type: SharingEvidenceRef, resolve: (s) => s.evidence })
  })
})

const MinuteCodeCountRef = builder.objectRef<MinuteCodeCount>('MinuteCodeCount').implement({
  description: 'How many validations ended with one code in one minute',
  fields: (t) => ({
    minute: t.expose('minute', { type: 'DateTime', description: 'Start of the minute (UTC)' }),
    code: t.exposeString('code', { description: 'A ValidationCode value' }),
    count: t.exposeInt('count', { description: 'Validations with this code in the minute' })
  })
})

const FeatureUsageRef = builder.objectRef<FeatureUsage>('FeatureUsage').implement({
  description: 'Usage of one feature over a window',
  fields: (t) => ({
    feature: t.exposeString('feature', { nullable: true, description: 'The feature as recorded; null = events that named no feature' }),
    events: t.exposeInt('events', { description: 'Usage events' }),
    quantity: t.exposeInt('quantity', { description: 'Sum of their quantities' })
  })
})

const UsageByFeatureRef = builder.objectRef<UsageByFeature>('UsageByFeature').implement({
  description: 'Usage per feature, and where the usage stream goes on from',
  fields: (t) => ({
    since: t.expose('since', { type: 'DateTime', description: 'Start of the window (events recorded at or after it)' }),
    throughSeq: t.field({ type: 'Seq', description: 'The usage seq the figures count up to, below which nothing is still being written: subscribe to usageRecorded with after: throughSeq to continue them without a gap or a double count', resolve: (u) => u.throughSeq }),
    features: t.field({ type: [FeatureUsageRef], description: `At most ${MAX_FEATURES} features, the largest quantity first`, resolve: (u) => u.features })
  })
})

builder.queryFields((t) => ({
  validationsPerMinute: t.field({
    type: [MinuteCodeCountRef],
    authScopes: { authenticated: true },
    description: 'Validations per minute and code over the last minutes, the current one included; only minutes and codes with validations (counts are flushed every 2 s, kept 48 hours)',
    args: {
      clientId: t.arg.id({ description: 'Only this client (a MANAGER: always its own); without it an ADMIN or AUDITOR gets all clients summed' }),
      minutes: t.arg.int({ description: `How many minutes back: 1 to ${MAX_MINUTES} (default 60)` })
    },
    resolve: (_root, args, ctx) => ctx.services.analytics.validationsPerMinute(ctx.actor, args)
  }),
  usageByFeature: t.field({
    type: UsageByFeatureRef,
    authScopes: { authenticated: true },
    description: 'Usage events and quantity per feature over the last hours, from the usage log',
    args: {
      clientId: t.arg.id({ description: 'Only this client (a MANAGER: always its own); without it an ADMIN or AUDITOR gets all clients' }),
      hours: t.arg.int({ description: `How many hours back: 1 to ${MAX_FEATURE_HOURS} (default 24)` })
    },
    resolve: (_root, args, ctx) => ctx.services.analytics.usageByFeature(ctx.actor, args)
  }),
  licenseSharing: t.field({
    type: [SharingSignalRef],
    authScopes: { authenticated: true },
    description: 'Serials whose usage looks shared, highest score first (score > 0 only). Needs FEATURE_ADVANCED_ANALYTICS.',
    args: {
      clientId: t.arg.id({ required: true, description: 'The client whose serials to compare (cli_…)' }),
      days: t.arg.int({ description: 'Window in days (default 30, at most 365)' }),
      first: t.arg.int({ description: 'At most this many (default 20, at most 100)' })
    },
    resolve: (_root, args, ctx) => ctx.services.analytics.licenseSharing(ctx.actor, args)
  }),
  clientStatistics: t.field({
    description: 'Counts and top serials of one client',
    type: ClientStatisticsRef,
    authScopes: { authenticated: true },
    args: { clientId: t.arg.id({ required: true, description: 'The client (cli_…)' }) },
    resolve: (_root, { clientId }, ctx) => ctx.services.analytics.clientStatistics(ctx.actor, clientId)
  }),
  usagePatterns: t.field({
    type: [UsageBucketRef],
    authScopes: { authenticated: true },
    description: 'Buckets with activity only; defaults: until = now, since = until − 1 day (HOUR) or 30 days (DAY)',
    args: {
      clientId: t.arg.id({ description: 'Only this client\'s activity (a MANAGER: always its own)' }),
      serialId: t.arg.id({ description: 'Only this serial\'s activity' }),
      granularity: t.arg({ type: Granularity, required: true, description: 'Hourly or daily buckets' }),
      since: t.arg({ type: 'DateTime', description: 'Start of the period (inclusive)' }),
      until: t.arg({ type: 'DateTime', description: 'End of the period (exclusive); default now' })
    },
    resolve: (_root, args, ctx) => ctx.services.analytics.usagePatterns(ctx.actor, args)
  })
}))
