import { builder } from '../../graphql/builder.ts'
import { ValidationCodeEnum } from '../serials/serial-graphql.ts'
import type { HeartbeatResult } from './validation-service.ts'

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
  heartbeat: t.field({
    type: HeartbeatResultRef,
    description: 'Public: renews a floating lease (the serial number is the credential); a culled device takes a free slot again',
    args: { input: t.arg({ type: HeartbeatInput, required: true, description: 'Serial number and device' }) },
    resolve: (_root, { input }, ctx) => ctx.services.validation.heartbeat(input)
  })
}))
