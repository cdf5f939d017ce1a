import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import { ValidationCodeEnum } from '../validation/validation-graphql.ts'
import type { RecordUsageResult, UsageEventView } from './usage-service.ts'

export const UsageEventRef = builder.objectRef<UsageEventView>('UsageEvent').implement({
  description: 'One recorded use of a serial by a device',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Usage event id (use_…)' }),
    serialId: t.exposeID('serialId', { description: 'The serial used (ser_…)' }),
    clientId: t.exposeID('clientId', { description: 'The serial\'s client (cli_…)' }),
    deviceId: t.exposeString('deviceId', { description: 'The device that recorded the usage' }),
    kind: t.exposeString('kind', { description: 'What was recorded: USAGE (the only kind today)' }),
    quantity: t.exposeInt('quantity', { description: 'How much was used (1 to 1,000,000)' }),
    feature: t.exposeString('feature', { description: 'The feature used, as sent; null = none given', nullable: true }),
    recordedAt: t.expose('recordedAt', { description: 'When the server stored the event', type: 'DateTime' }),
    seq: t.field({ type: 'Seq', description: 'Position in the usage stream, increasing; the same number as seq in REST. Resume usageRecorded with after: seq', resolve: (e) => e.seq })
  })
})

const RecordUsageResultRef = builder.objectRef<RecordUsageResult>('RecordUsageResult').implement({
  description: 'The answer to recordUsage',
  fields: (t) => ({
    recorded: t.exposeBoolean('recorded', { description: 'True when the event was stored (the serial was VALID for the device)' }),
    code: t.field({ description: 'The validation code the usage was checked with', type: ValidationCodeEnum, resolve: (r) => r.code }),
    usageEvent: t.field({ description: 'The stored event; null when not recorded', type: UsageEventRef, nullable: true, resolve: (r) => r.usageEvent })
  })
})

const RecordUsageInput = builder.inputType('RecordUsageInput', {
  description: 'Usage of a serial by a device',
  fields: (t) => ({
    serialNumber: t.string({ description: 'The full serial number (the credential)', required: true }),
    deviceId: t.string({ description: 'The device using the serial', required: true }),
    quantity: t.int({ description: 'How much was used: 1 to 1,000,000 (default 1)' }),
    feature: t.string({ description: 'Which feature was used (1–64 printable ASCII characters)' }),
    idempotencyKey: t.string({ description: 'A retry with the same key returns the first result' })
  })
})

builder.mutationFields((t) => ({
  recordUsage: t.field({
    type: RecordUsageResultRef,
    description: 'Public: validates first, then stores the event durably before answering',
    args: { input: t.arg({ type: RecordUsageInput, required: true, description: 'The serial number, device and usage' }) },
    resolve: (_root, { input }, ctx) => ctx.services.usage.record(input, ctx.meta)
  })
}))
