import { builder } from '../graphql/builder.ts'
import type { DeviceView } from './device-service.ts'

export const DeviceRef = builder.objectRef<DeviceView>('Device').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    serialId: t.exposeID('serialId'),
    deviceId: t.exposeString('deviceId'),
    deviceInfo: t.expose('deviceInfo', { type: 'JSON', nullable: true }),
    active: t.exposeBoolean('active', { description: 'Holds one of the serial\'s slots' }),
    firstSeenAt: t.expose('firstSeenAt', { type: 'DateTime' }),
    lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime', description: 'Up to a few seconds behind' }),
    deactivatedAt: t.expose('deactivatedAt', { type: 'DateTime', nullable: true }),
    validationCount: t.exposeInt('validationCount')
  })
})

const ReleaseDeviceInput = builder.inputType('ReleaseDeviceInput', {
  fields: (t) => ({ serialNumber: t.string({ required: true }), deviceId: t.string({ required: true }) })
})
const DeactivateDeviceInput = builder.inputType('DeactivateDeviceInput', {
  fields: (t) => ({ serialId: t.id({ required: true }), deviceId: t.string({ required: true }) })
})

builder.mutationFields((t) => ({
  releaseDevice: t.field({
    type: DeviceRef,
    description: 'Public: a device gives up its slot (the serial number is the credential)',
    args: { input: t.arg({ type: ReleaseDeviceInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.devices.releaseBySerialNumber(input)
  }),
  deactivateDevice: t.field({
    type: DeviceRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeactivateDeviceInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.devices.deactivate(ctx.actor, ctx.meta, input)
  })
}))
