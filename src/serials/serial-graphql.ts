import { builder } from '../graphql/builder.ts'
import { pageArgs, toConnection } from '../graphql/connection.ts'
import { ClientRef } from '../clients/client-graphql.ts'
import { DeviceRef } from '../devices/device-graphql.ts'
import { VALIDATION_CODES } from './serial-rules.ts'
import type { IssuedSerial, SerialView, ValidationResult } from './serial-service.ts'

export const SerialStatusEnum = builder.enumType('SerialStatus', { values: ['ACTIVE', 'SUSPENDED', 'REVOKED', 'EXPIRED'] as const })
export const ValidationCodeEnum = builder.enumType('ValidationCode', { values: VALIDATION_CODES })

export const SerialRef = builder.objectRef<SerialView>('Serial').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    clientId: t.exposeID('clientId'),
    client: t.field({
      type: ClientRef,
      nullable: true,
      resolve: (serial, _args, ctx) => ctx.loaders.client.load(serial.clientId)
    }),
    maskedNumber: t.exposeString('maskedNumber', { description: 'Only the last group is shown; see revealSerialNumber' }),
    maxUsageCount: t.exposeInt('maxUsageCount', { description: 'Maximum number of active devices' }),
    activeDevices: t.exposeInt('activeDevices'),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true, description: 'null = never expires' }),
    isDemo: t.exposeBoolean('isDemo'),
    metadata: t.expose('metadata', { type: 'JSON' }),
    status: t.expose('status', { type: SerialStatusEnum }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
    revokeReason: t.exposeString('revokeReason', { nullable: true }),
    batchId: t.exposeString('batchId', { nullable: true, description: 'Set for serials made by one createSerials call' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    devices: t.connection({
      type: DeviceRef,
      args: { active: t.arg.boolean({ description: 'Only active (true) or released (false) devices' }) },
      resolve: async (serial, args, ctx) => toConnection(await ctx.services.devices.listForSerial(serial.id, pageArgs(args), args.active), (d) => d.id)
    }, { name: 'DeviceConnection' }, { name: 'DeviceEdge' })
  })
})

const IssuedSerialRef = builder.objectRef<IssuedSerial>('CreateSerialPayload').implement({
  fields: (t) => ({
    serial: t.field({ type: SerialRef, resolve: (p) => p.serial }),
    serialNumber: t.exposeString('serialNumber', { description: 'The full number: shown here once' })
  })
})

const CreateSerialsPayload = builder.objectRef<{ count: number, serials: IssuedSerial[] }>('CreateSerialsPayload').implement({
  fields: (t) => ({
    count: t.exposeInt('count'),
    serials: t.field({ type: [IssuedSerialRef], resolve: (p) => p.serials })
  })
})

export const ValidationResultRef = builder.objectRef<ValidationResult>('ValidationResult').implement({
  fields: (t) => ({
    valid: t.exposeBoolean('valid'),
    code: t.field({ type: ValidationCodeEnum, resolve: (r) => r.code }),
    message: t.exposeString('message'),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    remainingDevices: t.exposeInt('remainingDevices', { nullable: true }),
    isDemo: t.exposeBoolean('isDemo', { nullable: true }),
    serverTime: t.expose('serverTime', { type: 'DateTime' }),
    nonce: t.exposeString('nonce', { nullable: true }),
    signature: t.exposeString('signature', { nullable: true, description: 'Present when a nonce was sent; see README "Checking a signed answer"' })
  })
})

const SerialFilter = builder.inputType('SerialFilter', {
  fields: (t) => ({
    clientId: t.id(),
    status: t.field({ type: SerialStatusEnum }),
    isDemo: t.boolean(),
    expiresBefore: t.field({ type: 'DateTime' })
  })
})

const serialFields = (t: PothosSchemaTypes.InputFieldBuilder<PothosSchemaTypes.ExtendDefaultTypes<object> & any, 'InputObject'>) => ({
  clientId: t.id({ required: true }),
  maxUsageCount: t.int({ description: 'Maximum active devices (default 1)' }),
  expiresAt: t.field({ type: 'DateTime', description: 'null = never expires (demo serials: 14 days)' }),
  isDemo: t.boolean(),
  metadata: t.field({ type: 'JSON', description: 'JSON object, at most 4 KiB' })
})

const CreateSerialInput = builder.inputType('CreateSerialInput', { fields: (t) => serialFields(t) })
const CreateSerialsInput = builder.inputType('CreateSerialsInput', {
  fields: (t) => ({
    ...serialFields(t),
    count: t.int({ required: true, description: '1 to 10,000' }),
    idempotencyKey: t.string({ description: 'A retry with the same key returns the first result' })
  })
})
const UpdateSerialInput = builder.inputType('UpdateSerialInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    maxUsageCount: t.int(),
    expiresAt: t.field({ type: 'DateTime' }),
    metadata: t.field({ type: 'JSON' })
  })
})
const SerialIdInput = (name: string) => builder.inputType(name, { fields: (t) => ({ id: t.id({ required: true }) }) })
const SuspendSerialInput = SerialIdInput('SuspendSerialInput')
const ReinstateSerialInput = SerialIdInput('ReinstateSerialInput')
const RevealSerialNumberInput = SerialIdInput('RevealSerialNumberInput')
const RevokeSerialInput = builder.inputType('RevokeSerialInput', {
  fields: (t) => ({ id: t.id({ required: true }), reason: t.string({ required: true }) })
})
const ValidateSerialInput = builder.inputType('ValidateSerialInput', {
  fields: (t) => ({
    serialNumber: t.string({ required: true }),
    deviceId: t.string({ required: true }),
    deviceInfo: t.field({ type: 'JSON', description: 'JSON object, at most 2 KiB; stored encrypted' }),
    nonce: t.string({ description: 'Echoed and signed in the answer' })
  })
})

builder.queryFields((t) => ({
  serial: t.field({
    type: SerialRef,
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => ctx.services.serials.get(ctx.actor, id)
  }),
  serials: t.connection({
    type: SerialRef,
    authScopes: { authenticated: true },
    args: { filter: t.arg({ type: SerialFilter }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.serials.list(ctx.actor, pageArgs(args), args.filter), (s) => s.id)
  }, { name: 'SerialConnection' }, { name: 'SerialEdge' })
}))

builder.mutationFields((t) => ({
  createSerial: t.field({
    type: IssuedSerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateSerialInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.create(ctx.actor, ctx.meta, input)
  }),
  createSerials: t.field({
    type: CreateSerialsPayload,
    authScopes: { writer: true },
    complexity: 1,
    args: { input: t.arg({ type: CreateSerialsInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.createMany(ctx.actor, ctx.meta, input)
  }),
  updateSerial: t.field({
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: UpdateSerialInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.update(ctx.actor, ctx.meta, input)
  }),
  suspendSerial: t.field({
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: SuspendSerialInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.suspend(ctx.actor, ctx.meta, input)
  }),
  reinstateSerial: t.field({
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: ReinstateSerialInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.reinstate(ctx.actor, ctx.meta, input)
  }),
  revokeSerial: t.field({
    type: SerialRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: RevokeSerialInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.revoke(ctx.actor, ctx.meta, input)
  }),
  revealSerialNumber: t.string({
    authScopes: { writer: true },
    description: 'The full serial number; every call is written to the audit log',
    args: { input: t.arg({ type: RevealSerialNumberInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.serials.reveal(ctx.actor, ctx.meta, input)
  }),
  validateSerial: t.field({
    type: ValidationResultRef,
    description: 'Public: the serial number is the credential',
    args: { input: t.arg({ type: ValidateSerialInput, required: true }) },
    resolve: async (_root, { input }, ctx) => (await ctx.services.serials.validate(input)).result
  })
}))
