import { builder } from '../../graphql/builder.ts'
import type { LicenseDevice, LicenseStatus } from './portal-service.ts'

const LicenseDeviceRef = builder.objectRef<LicenseDevice>('LicenseDevice').implement({
  description: 'A device holding one of a serial\'s slots, as its license holder sees it',
  fields: (t) => ({
    deviceId: t.exposeString('deviceId', { description: 'The id the device sent when validating' }),
    firstSeenAt: t.expose('firstSeenAt', { description: 'First validation from this device', type: 'DateTime' }),
    lastSeenAt: t.expose('lastSeenAt', { description: 'Last validation from this device (up to a few seconds behind)', type: 'DateTime' })
  })
})

const LicenseStatusRef = builder.objectRef<LicenseStatus>('LicenseStatus').implement({
  description: 'What the holder of a serial number may see of it (customer portal)',
  fields: (t) => ({
    maskedNumber: t.exposeString('maskedNumber', { description: 'The number with all but the last group masked' }),
    status: t.exposeString('status', { description: 'ACTIVE, SUSPENDED, REVOKED or EXPIRED' }),
    expiresAt: t.expose('expiresAt', { description: 'When the serial expires; null = never', type: 'DateTime', nullable: true }),
    isDemo: t.exposeBoolean('isDemo', { description: 'A time-limited demo serial' }),
    maxDevices: t.exposeInt('maxDevices', { description: 'How many devices may hold a slot at once' }),
    entitlements: t.exposeStringList('entitlements', { description: 'Feature codes the license unlocks (from its policy)' }),
    devices: t.field({
      type: [LicenseDeviceRef],
      description: 'Devices holding a slot now, oldest first (at most 100)',
      resolve: (s) => s.devices
    })
  })
})

builder.queryField('licenseStatus', (t) => t.field({
  type: LicenseStatusRef,
  description: 'Public: a serial\'s status, expiry, entitlements and devices; the serial number is the credential (per-IP limits apply, every look-up audited)',
  args: { serialNumber: t.arg.string({ required: true, description: 'The full serial number, in any accepted spelling' }) },
  resolve: (_root, { serialNumber }, ctx) => ctx.services.portal.licenseStatus(serialNumber, ctx.meta)
}))
