// The customer portal's one read: what an end customer holding only the serial number may know
// about it (status, expiry, entitlements, its active devices). The number is the credential, as
// for validation; the look-up goes through the audited serialByNumber path under the portal's own
// read-only actor, so every portal look-up is in the audit log like a support look-up.
import type { Actor } from '../../kernel/access.ts'
import type { DeviceService } from '../devices/device-service.ts'
import type { PolicyService } from '../policies/policy-service.ts'
import type { SerialService } from '../serials/serial-service.ts'

export interface LicenseDevice { deviceId: string, firstSeenAt: Date, lastSeenAt: Date }

export interface LicenseStatus {
  maskedNumber: string
  status: 'ACTIVE' | 'SUSPENDED' | 'REVOKED' | 'EXPIRED'
  /** null = never expires */
  expiresAt: Date | null
  isDemo: boolean
  maxDevices: number
  entitlements: string[]
  /** Active devices only (those holding a slot), oldest first; at most MAX_PORTAL_DEVICES. */
  devices: LicenseDevice[]
}

/** A serial with more devices than this is a site license: the portal lists the first ones. */
export const MAX_PORTAL_DEVICES = 100

/** Reads every client's serials (the number proves the right to it) and changes nothing. */
const PORTAL_ACTOR: Actor = Object.freeze({ kind: 'anonymous', id: 'portal', role: 'AUDITOR', clientId: null, keyId: null, expiresAt: null })

export function createPortalService (services: { serials: Pick<SerialService, 'getByNumber'>, devices: Pick<DeviceService, 'listForSerial'>, policies: Pick<PolicyService, 'terms'> }) {
  return {
    /** INVALID_FORMAT → VALIDATION_ERROR, unknown number → NOT_FOUND (counted as a failed look-up). */
    async licenseStatus (serialNumber: string, meta: { ip: string, requestId: string }): Promise<LicenseStatus> {
      const serial = await services.serials.getByNumber(PORTAL_ACTOR, meta, { serialNumber })
      const [page, terms] = await Promise.all([
        services.devices.listForSerial(serial.id, { first: MAX_PORTAL_DEVICES }, true),
        serial.policyId ? services.policies.terms(serial.policyId) : undefined
      ])
      return {
        maskedNumber: serial.maskedNumber,
        status: serial.status,
        expiresAt: serial.expiresAt,
        isDemo: serial.isDemo,
        maxDevices: serial.maxDevices,
        entitlements: terms?.entitlements ?? [],
        devices: page.items.map((d) => ({ deviceId: d.deviceId, firstSeenAt: d.firstSeenAt, lastSeenAt: d.lastSeenAt }))
      }
    }
  }
}

export type PortalService = ReturnType<typeof createPortalService>
