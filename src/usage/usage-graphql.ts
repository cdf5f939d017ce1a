import { builder } from '../graphql/builder.ts'
import { ValidationCodeEnum } from '../serials/serial-graphql.ts'
import type { RecordUsageResult, UsageEventView } from './usage-service.ts'

export const UsageEventRef = builder.objectRef<UsageEventView>('UsageEvent').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    serialId: t.exposeID('serialId'),
    clientId: t.exposeID('clientId'),
    deviceId: t.exposeString('deviceId'),
    kind: t.exposeString('kind'),
    quantity: t.exposeInt('quantity'),
    feature: t.exposeString('feature', { nullable: true }),
    recordedAt: t.expose('recordedAt', { type: 'DateTime' }),
    seq: t.field({ type: 'String', description: 'Monotonic sequence (64-bit, as a string); resume a subscription with after: seq', resolve: (e) => String(e.seq) })
  })
})

const RecordUsageResultRef = builder.objectRef<RecordUsageResult>('RecordUsageResult').implement({
  fields: (t) => ({
    recorded: t.exposeBoolean('recorded'),
    code: t.field({ type: ValidationCodeEnum, resolve: (r) => r.code }),
    usageEvent: t.field({ type: UsageEventRef, nullable: true, resolve: (r) => r.usageEvent })
  })
})

const RecordUsageInput = builder.inputType('RecordUsageInput', {
  fields: (t) => ({
    serialNumber: t.string({ required: true }),
    deviceId: t.string({ required: true }),
    quantity: t.int({ description: '1 to 1,000,000 (default 1)' }),
    feature: t.string(),
    idempotencyKey: t.string({ description: 'A retry with the same key returns the first result' })
  })
})

builder.mutationFields((t) => ({
  recordUsage: t.field({
    type: RecordUsageResultRef,
    description: 'Public: validates first, then stores the event durably before answering',
    args: { input: t.arg({ type: RecordUsageInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.usage.record(input, ctx.meta)
  })
}))
