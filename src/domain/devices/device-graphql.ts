import { builder } from '../../graphql/builder.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import { NodeRef } from '../../graphql/node.ts'
import { SerialRef } from '../serials/serial-graphql.ts'
import type { DeviceView } from './device-service.ts'

export const DeviceRef = builder.objectRef<DeviceView>('Device').implement({
  description: 'A machine that has validated a serial; an active one holds one of the serial\'s slots',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Device record id (dev_…)' }),
    serialId: t.exposeID('serialId', { description: 'The serial this device uses (ser_…)' }),
    deviceId: t.exposeString('deviceId', { description: 'The id the device sent when validating' }),
    deviceInfo: t.expose('deviceInfo', { description: 'What the device sent as deviceInfo at its first validation (stored encrypted)', type: 'JSON', nullable: true }),
    active: t.exposeBoolean('active', { description: 'Holds one of the serial\'s slots' }),
    firstSeenAt: t.expose('firstSeenAt', { description: 'First validation from this device', type: 'DateTime' }),
    lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime', description: 'Up to a few seconds behind' }),
    deactivatedAt: t.expose('deactivatedAt', { description: 'When it last gave up its slot; null = never', type: 'DateTime', nullable: true }),
    validationCount: t.exposeInt('validationCount', { description: 'Validations from this device (may lag a few seconds)' })
  })
})

const DeviceConnection = connectionType(DeviceRef, 'Device', 'devices')

builder.objectField(SerialRef, 'devices', (t) => t.field({
  type: DeviceConnection,
  description: 'Devices that have used this serial, oldest first',
  args: { ...forwardArgs(t.arg), active: t.arg.boolean({ description: 'Only active (true) or released (false) devices' }) },
  resolve: async (serial, args, ctx) => toConnection(await ctx.services.devices.listForSerial(serial.id, pageArgs(args), args.active), (d) => d.id)
}))

const ReleaseDeviceInput = builder.inputType('ReleaseDeviceInput', {
  description: 'A device giving up its slot on a serial',
  fields: (t) => ({
    serialNumber: t.string({ required: true, description: 'The full serial number (the credential)' }),
    deviceId: t.string({ required: true, description: 'The device that gives up its slot' })
  })
})
const DeactivateDeviceInput = builder.inputType('DeactivateDeviceInput', {
  description: 'A device to free a slot from, by staff',
  fields: (t) => ({
    serialId: t.id({ required: true, description: 'The serial (ser_…)' }),
    deviceId: t.string({ required: true, description: 'The device id the device validated with' })
  })
})

builder.mutationFields((t) => ({
  releaseDevice: t.field({
    type: DeviceRef,
    description: 'Public: a device gives up its slot (the serial number is the credential)',
    args: { input: t.arg({ type: ReleaseDeviceInput, required: true, description: 'The serial number and the device' }) },
    resolve: (_root, { input }, ctx) => ctx.services.devices.releaseBySerialNumber(input)
  }),
  deactivateDevice: t.field({
    description: 'Frees a device\'s slot on a serial the caller manages; the device may take one again later',
    type: DeviceRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeactivateDeviceInput, required: true, description: 'The serial and the device' }) },
    resolve: (_root, { input }, ctx) => ctx.services.devices.deactivate(ctx.actor, ctx.meta, input)
  })
}))
