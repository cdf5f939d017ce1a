import { builder } from '../../graphql/builder.ts'
import type { HeartbeatResult, ValidationResult } from './validation-service.ts'
import { VALIDATION_CODES } from './validation-rules.ts'

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

const ValidateSerialInput = builder.inputType('ValidateSerialInput', {
  description: 'A device asking whether it may use a serial',
  fields: (t) => ({
    serialNumber: t.string({ description: 'The full serial number; case, spaces and dashes do not matter', required: true }),
    deviceId: t.string({ description: 'A stable id of the device (1–128 printable ASCII characters)', required: true }),
    deviceInfo: t.field({ type: 'JSON', description: 'JSON object, at most 2 KiB; stored encrypted' }),
    nonce: t.string({ description: 'Echoed and signed in the answer' })
  })
})

const HeartbeatResultRef = builder.objectRef<HeartbeatResult>('HeartbeatResult').implement({
  description: 'Answer to a heartbeat: whether the device still holds its slot',
  fields: (t) => ({
    alive: t.exposeBoolean('alive', { description: 'True while the device holds a slot (its lease was renewed)' }),
    code: t.field({ type: ValidationCodeEnum, description: 'The validation code for this device', resolve: (r) => r.code }),
    leaseExpiresAt: t.expose('leaseExpiresAt', { type: 'DateTime', nullable: true, description: 'When the lease lapses without another heartbeat; null unless floating and alive' })
  })
})

const HeartbeatInput = builder.inputType('HeartbeatInput', {
  description: 'A running app\'s periodic sign of life',
  fields: (t) => ({
    serialNumber: t.string({ required: true, description: 'The full serial number (the credential)' }),
    deviceId: t.string({ required: true, description: 'The application\'s own device identifier' })
  })
})

builder.mutationFields((t) => ({
  validateSerial: t.field({
    type: ValidationResultRef,
    description: 'Public: the serial number is the credential',
    args: { input: t.arg({ type: ValidateSerialInput, required: true, description: 'The serial number and the device' }) },
    resolve: async (_root, { input }, ctx) => (await ctx.services.validation.validate(input)).result
  }),
  heartbeat: t.field({
    type: HeartbeatResultRef,
    description: 'Public: renews a floating lease (the serial number is the credential); a culled device takes a free slot again',
    args: { input: t.arg({ type: HeartbeatInput, required: true, description: 'Serial number and device' }) },
    resolve: (_root, { input }, ctx) => ctx.services.validation.heartbeat(input)
  })
}))
