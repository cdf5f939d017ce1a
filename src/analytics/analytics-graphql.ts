import { builder } from '../graphql/builder.ts'
import type { ClientStatistics, UsageBucket } from './analytics-service.ts'

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

builder.queryFields((t) => ({
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
