import { builder, type InputFieldBuilder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import { ClientRef } from '../clients/client-graphql.ts'
import { PolicyRef } from '../policies/policy-graphql.ts'
import type { IssuedSerial, SerialView } from './serial-service.ts'

export const SerialStatusEnum = builder.enumType('SerialStatus', {
  description: 'Where a serial stands',
  values: {
    ACTIVE: { description: 'Validates (subject to its device limit)' },
    SUSPENDED: { description: 'Temporarily refused (SUSPENDED) until reinstated' },
    REVOKED: { description: 'Refused for good (REVOKED); final' },
    EXPIRED: { description: 'Past its expiresAt (EXPIRED); extend it with updateSerial' }
  } as const
})
export const SerialRef = builder.objectRef<SerialView>('Serial').implement({
  description: 'A license: a serial number with its device limit, expiry and state',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Serial id (ser_…)' }),
    clientId: t.exposeID('clientId', { description: 'The client the serial belongs to (cli_…)' }),
    client: t.field({
      description: 'The client the serial belongs to; null if the caller cannot see it',
      type: ClientRef,
      nullable: true,
      resolve: (serial, _args, ctx) => ctx.loaders.client.load(serial.clientId)
    }),
    maskedNumber: t.exposeString('maskedNumber', { description: 'Only the last group is shown; see revealSerialNumber' }),
    maxDevices: t.exposeInt('maxDevices', { description: 'Maximum number of active devices (the device limit)' }),
    maxUsageCount: t.exposeInt('maxDevices', { description: 'Maximum number of active devices', deprecationReason: 'Use maxDevices (the same number); maxUsageCount goes in a later release' }),
    activeDevices: t.exposeInt('activeDevices', { description: 'Devices holding a slot now' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true, description: 'When the serial expires; null = never' }),
    isDemo: t.exposeBoolean('isDemo', { description: 'A demo serial: expires 14 days after creation unless expiresAt was given' }),
    metadata: t.expose('metadata', { description: 'The vendor\'s own JSON object (at most 4 KiB)', type: 'JSON' }),
    status: t.expose('status', { description: 'ACTIVE, SUSPENDED, REVOKED, or EXPIRED (computed from expiresAt)', type: SerialStatusEnum }),
    revokedAt: t.expose('revokedAt', { description: 'When the serial was revoked; null = not revoked', type: 'DateTime', nullable: true }),
    revokeReason: t.exposeString('revokeReason', { description: 'Why it was revoked, as given to revokeSerial', nullable: true }),
    batchId: t.exposeString('batchId', { nullable: true, description: 'Set for serials made by one createSerials call' }),
    createdAt: t.expose('createdAt', { description: 'When the serial was created', type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { description: 'When the serial last changed', type: 'DateTime' }),
    policy: t.field({
      type: PolicyRef,
      nullable: true,
      description: 'The policy the serial was created under; null = none',
      resolve: (serial, _args, ctx) => serial.policyId ? ctx.loaders.policy.load(serial.policyId) : null
    }),
    entitlements: t.stringList({
      description: 'Feature codes the serial unlocks (its policy\'s); empty without a policy',
      resolve: async (serial, _args, ctx) => serial.policyId ? (await ctx.services.policies.terms(serial.policyId))?.entitlements ?? [] : []
    })
  })
})

const IssuedSerialRef = builder.objectRef<IssuedSerial>('CreateSerialPayload').implement({
  description: 'A new serial with its full number, shown this once',
  fields: (t) => ({
    serial: t.field({ description: 'The new serial', type: SerialRef, resolve: (p) => p.serial }),
    serialNumber: t.exposeString('serialNumber', { description: 'The full number: shown here once' })
  })
})

const CreateSerialsPayload = builder.objectRef<{ count: number, serials: IssuedSerial[] }>('CreateSerialsPayload').implement({
  description: 'The serials made by one createSerials call, each with its full number (shown here once; a retry with the same idempotencyKey returns them again)',
  fields: (t) => ({
    count: t.exposeInt('count', { description: 'How many serials were made' }),
    serials: t.field({ description: 'Each new serial with its full number', type: [IssuedSerialRef], resolve: (p) => p.serials })
  })
})

const SerialConnection = connectionType(SerialRef, 'Serial', 'serials')

const SerialFilter = builder.inputType('SerialFilter', {
  description: 'Conditions on serials; all given ones must hold',
  fields: (t) => ({
    clientId: t.id({ description: 'Only this client\'s serials' }),
    status: t.field({ description: 'Only serials in this status', type: SerialStatusEnum }),
    isDemo: t.boolean({ description: 'Only demo (true) or only full (false) serials' }),
    expiresBefore: t.field({ description: 'Only serials expiring at or before this time', type: 'DateTime' })
  })
})

const serialFields = (t: InputFieldBuilder) => ({
  clientId: t.id({ description: 'The client the serial belongs to (cli_…)', required: true }),
  maxDevices: t.int({ description: 'Maximum active devices (default 1, or the policy\'s)' }),
  maxUsageCount: t.int({ description: 'Maximum active devices', deprecationReason: 'Use maxDevices; giving both with different values is a VALIDATION_ERROR' }),
  expiresAt: t.field({ type: 'DateTime', description: 'When it expires; omitted or null = never (demo serials: 14 days)' }),
  isDemo: t.boolean({ description: 'A demo serial (expires after 14 days unless expiresAt is given)' }),
  metadata: t.field({ type: 'JSON', description: 'JSON object, at most 4 KiB' }),
  policyId: t.id({ description: 'Policy whose device limit, duration and entitlements the serial takes, unless maxDevices / expiresAt are given' })
})

const CreateSerialInput = builder.inputType('CreateSerialInput', { description: 'A new serial', fields: (t) => serialFields(t) })
const CreateSerialsInput = builder.inputType('CreateSerialsInput', {
  description: 'Many serials with the same terms, made in one transaction',
  fields: (t) => ({
    ...serialFields(t),
    count: t.int({ required: true, description: 'How many serials to make: 1 to 10,000' }),
    idempotencyKey: t.string({ description: 'A retry with the same key returns the first result' })
  })
})
const UpdateSerialInput = builder.inputType('UpdateSerialInput', {
  description: 'Changes to a serial; absent fields stay as they are',
  fields: (t) => ({
    id: t.id({ description: 'The serial to change (ser_…)', required: true }),
    maxDevices: t.int({ description: 'New device limit (active devices beyond it keep their slots)' }),
    maxUsageCount: t.int({ description: 'New device limit', deprecationReason: 'Use maxDevices; giving both with different values is a VALIDATION_ERROR' }),
    expiresAt: t.field({ description: 'New expiry; null = never', type: 'DateTime' }),
    metadata: t.field({ description: 'New metadata object (replaces the old one)', type: 'JSON' })
  })
})
const SerialIdInput = (name: string, description: string) => builder.inputType(name, {
  description,
  fields: (t) => ({ id: t.id({ required: true, description: 'The serial (ser_…)' }) })
})
const SuspendSerialInput = SerialIdInput('SuspendSerialInput', 'The serial to suspend')
const ReinstateSerialInput = SerialIdInput('ReinstateSerialInput', 'The serial to reinstate')
const RevealSerialNumberInput = SerialIdInput('RevealSerialNumberInput', 'The serial whose full number to show')
const RevokeSerialInput = builder.inputType('RevokeSerialInput', {
  description: 'The serial to revoke, and why',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The serial (ser_…)' }),
    reason: t.string({ required: true, description: 'Why, for the audit log and revokeReason' })
  })
})
builder.queryFields((t) => ({
  serial: t.field({
    description: 'One serial by id (a MANAGER: only its own client\'s)',
    type: SerialRef,
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true, description: 'Serial id (ser_…)' }) },
    resolve: (_root, { id }, ctx) => ctx.services.serials.get(ctx.actor, id)
  }),
  serialByNumber: t.field({
    type: SerialRef,
    authScopes: { authenticated: true },
    description: 'Support look-up by the full serial number (normalised; tenant rules apply; every call is audited)',
    args: { serialNumber: t.arg.string({ required: true, description: 'The full serial number, in any accepted spelling' }) },
    resolve: (_root, { serialNumber }, ctx) => ctx.services.serials.getByNumber(ctx.actor, ctx.meta, { serialNumber })
  }),
  serials: t.field({
    type: SerialConnection,
    authScopes: { authenticated: true },
    description: 'Serials the caller can see (a MANAGER: its own client\'s), oldest first',
    args: { ...forwardArgs(t.arg), filter: t.arg({ type: SerialFilter, description: 'Only serials that match every given condition' }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.serials.list(ctx.actor, pageArgs(args), args.filter), (s) => s.id)
  })
}))

builder.mutationFields((t) => ({
  createSerial: t.field({
    description: 'Creates a serial; its full number is in the answer, once',
    type: IssuedSerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateSerialInput, required: true, description: 'The serial to create' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.create(ctx.actor, ctx.meta, input)
  }),
  createSerials: t.field({
    description: 'Creates up to 10,000 serials at once (needs FEATURE_BULK_OPERATIONS)',
    type: CreateSerialsPayload,
    authScopes: { writer: true },
    complexity: 1,
    args: { input: t.arg({ type: CreateSerialsInput, required: true, description: 'How many serials, and their terms' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.createMany(ctx.actor, ctx.meta, input)
  }),
  updateSerial: t.field({
    description: 'Changes a serial\'s device limit, expiry or metadata',
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: UpdateSerialInput, required: true, description: 'The serial and its changes' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.update(ctx.actor, ctx.meta, input)
  }),
  suspendSerial: t.field({
    description: 'Suspends a serial: it answers SUSPENDED until reinstated',
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: SuspendSerialInput, required: true, description: 'The serial to suspend' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.suspend(ctx.actor, ctx.meta, input)
  }),
  reinstateSerial: t.field({
    description: 'Lifts a serial\'s suspension',
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: ReinstateSerialInput, required: true, description: 'The serial to reinstate' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.reinstate(ctx.actor, ctx.meta, input)
  }),
  revokeSerial: t.field({
    description: 'Revokes a serial for good: it answers REVOKED from then on',
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: RevokeSerialInput, required: true, description: 'The serial and the reason' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.revoke(ctx.actor, ctx.meta, input)
  }),
  revealSerialNumber: t.string({
    authScopes: { writer: true },
    description: 'The full serial number; every call is written to the audit log',
    args: { input: t.arg({ type: RevealSerialNumberInput, required: true, description: 'The serial' }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.reveal(ctx.actor, ctx.meta, input)
  })
}))
