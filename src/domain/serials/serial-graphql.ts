import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import { ClientRef } from '../clients/client-graphql.ts'
import { DeviceRef } from '../devices/device-graphql.ts'
import { PolicyRef, policyLoader } from '../policies/policy-graphql.ts'
import { VALIDATION_CODES } from './serial-rules.ts'
import type { IssuedSerial, SerialView, ValidationResult } from './serial-service.ts'

export const SerialStatusEnum = builder.enumType('SerialStatus', {
  description: 'Where a serial stands',
  values: {
    ACTIVE: { description: 'Validates (subject to its device limit)' },
    SUSPENDED: { description: 'Temporarily refused (SUSPENDED) until reinstated' },
    REVOKED: { description: 'Refused for good (REVOKED); final' },
    EXPIRED: { description: 'Past its expiresAt (EXPIRED); extend it with updateSerial' }
  } as const
})
/** Every code gets a description; a code added to VALIDATION_CODES without one fails typecheck. */
const VALIDATION_CODE_DESCRIPTIONS: Record<typeof VALIDATION_CODES[number], string> = {
  VALID: 'The serial may be used on this device',
  INVALID_FORMAT: 'Not a well-formed serial number (wrong length, characters or check character); the database was not asked',
  NOT_FOUND: 'No serial with this number',
  REVOKED: 'The serial was revoked (final)',
  CLIENT_SUSPENDED: 'The serial\'s client is suspended',
  SUSPENDED: 'The serial is suspended',
  EXPIRED: 'The serial is past its expiry',
  TOO_MANY_DEVICES: 'Every device slot is taken: a new device must wait for a release',
  TOO_MANY_ACTIVATIONS: 'Too many new devices activated this serial in the last 24 hours'
}
export const ValidationCodeEnum = builder.enumType('ValidationCode', {
  description: 'Outcome of a validation, checked in this order: INVALID_FORMAT, NOT_FOUND, REVOKED, CLIENT_SUSPENDED, SUSPENDED, EXPIRED, TOO_MANY_DEVICES, TOO_MANY_ACTIVATIONS, then VALID',
  values: Object.fromEntries(VALIDATION_CODES.map((code) => [code, { description: VALIDATION_CODE_DESCRIPTIONS[code] }])) as Record<typeof VALIDATION_CODES[number], { description: string }>
})

const DeviceConnection = connectionType(DeviceRef, 'Device', 'devices')

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
    maxUsageCount: t.exposeInt('maxUsageCount', { description: 'Maximum number of active devices' }),
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
      resolve: (serial, _args, ctx) => serial.policyId ? policyLoader(ctx).load(serial.policyId) : null
    }),
    entitlements: t.stringList({
      description: 'Feature codes the serial unlocks (its policy\'s); empty without a policy',
      resolve: async (serial, _args, ctx) => serial.policyId ? (await ctx.services.policies.terms(serial.policyId))?.entitlements ?? [] : []
    }),
    devices: t.field({
      type: DeviceConnection,
      description: 'Devices that have used this serial, oldest first',
      args: { ...forwardArgs(t.arg), active: t.arg.boolean({ description: 'Only active (true) or released (false) devices' }) },
      resolve: async (serial, args, ctx) => toConnection(await ctx.services.devices.listForSerial(serial.id, pageArgs(args), args.active), (d) => d.id)
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

export const ValidationResultRef = builder.objectRef<ValidationResult>('ValidationResult').implement({
  description: 'The answer to a validation, optionally signed',
  fields: (t) => ({
    valid: t.exposeBoolean('valid', { description: 'True when code is VALID' }),
    code: t.field({ description: 'Why the serial is valid or not', type: ValidationCodeEnum, resolve: (r) => r.code }),
    message: t.exposeString('message', { description: 'The code in words, for logs (may change; branch on code)' }),
    expiresAt: t.expose('expiresAt', { description: 'When the serial expires; null = never (or not known, e.g. NOT_FOUND)', type: 'DateTime', nullable: true }),
    remainingDevices: t.exposeInt('remainingDevices', { description: 'Free device slots after this validation; null when not valid', nullable: true }),
    isDemo: t.exposeBoolean('isDemo', { description: 'Whether the serial is a demo; null when not found', nullable: true }),
    serverTime: t.expose('serverTime', { description: 'The server\'s clock, for detecting a tampered local clock', type: 'DateTime' }),
    nonce: t.exposeString('nonce', { description: 'The nonce sent with the request, echoed (covered by the signature)', nullable: true }),
    signature: t.exposeString('signature', { nullable: true, description: 'Present when a nonce was sent; see README "Checking a signed answer"' }),
    entitlements: t.exposeStringList('entitlements', { description: 'Feature codes the license unlocks; empty unless VALID' }),
    leaseExpiresAt: t.expose('leaseExpiresAt', { type: 'DateTime', nullable: true, description: 'Floating policies: when this device\'s lease lapses without a heartbeat; else null' })
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

const serialFields = (t: PothosSchemaTypes.InputFieldBuilder<PothosSchemaTypes.ExtendDefaultTypes<object> & any, 'InputObject'>) => ({
  clientId: t.id({ description: 'The client the serial belongs to (cli_…)', required: true }),
  maxUsageCount: t.int({ description: 'Maximum active devices (default 1)' }),
  expiresAt: t.field({ type: 'DateTime', description: 'When it expires; omitted or null = never (demo serials: 14 days)' }),
  isDemo: t.boolean({ description: 'A demo serial (expires after 14 days unless expiresAt is given)' }),
  metadata: t.field({ type: 'JSON', description: 'JSON object, at most 4 KiB' }),
  policyId: t.id({ description: 'Policy whose device limit, duration and entitlements the serial takes, unless maxUsageCount / expiresAt are given' })
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
    maxUsageCount: t.int({ description: 'New device limit (active devices beyond it keep their slots)' }),
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
const ValidateSerialInput = builder.inputType('ValidateSerialInput', {
  description: 'A device asking whether it may use a serial',
  fields: (t) => ({
    serialNumber: t.string({ description: 'The full serial number; case, spaces and dashes do not matter', required: true }),
    deviceId: t.string({ description: 'A stable id of the device (1–128 printable ASCII characters)', required: true }),
    deviceInfo: t.field({ type: 'JSON', description: 'JSON object, at most 2 KiB; stored encrypted' }),
    nonce: t.string({ description: 'Echoed and signed in the answer' })
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
  }),
  validateSerial: t.field({
    type: ValidationResultRef,
    description: 'Public: the serial number is the credential',
    args: { input: t.arg({ type: ValidateSerialInput, required: true, description: 'The serial number and the device' }) },
    resolve: async (_root, { input }, ctx) => (await ctx.services.serials.validate(input)).result
  })
}))
