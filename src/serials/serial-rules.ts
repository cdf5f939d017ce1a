// Pure validation rules: no I/O, `now` passed in. Guard clauses in the contract's order; the
// first failure wins.
export const VALIDATION_CODES = [
  'VALID', 'INVALID_FORMAT', 'NOT_FOUND', 'REVOKED', 'CLIENT_SUSPENDED', 'SUSPENDED', 'EXPIRED', 'TOO_MANY_DEVICES'
] as const
export type ValidationCode = typeof VALIDATION_CODES[number]

/** The part of a serial the hot path needs; cached in L1/L2 under `s:<numberHash>`. */
export interface SerialState {
  id: string
  clientId: string
  clientNumber: string
  status: 'ACTIVE' | 'SUSPENDED' | 'REVOKED'
  /** epoch ms; null = never expires */
  expiresAt: number | null
  maxUsageCount: number
  activeDevices: number
  isDemo: boolean
}

export const MESSAGES: Record<ValidationCode, string> = {
  VALID: 'Serial is valid for this device',
  INVALID_FORMAT: 'Serial number is not well formed',
  NOT_FOUND: 'Serial number not found',
  REVOKED: 'Serial has been revoked',
  CLIENT_SUSPENDED: 'The owner of this serial is suspended',
  SUSPENDED: 'Serial is suspended',
  EXPIRED: 'Serial has expired',
  TOO_MANY_DEVICES: 'Serial is already active on the maximum number of devices'
}

/** Checks that do not depend on the device. Returns the failing code, or null when they pass. */
export function checkSerial (serial: SerialState | undefined, clientStatus: string | undefined, now: number): Exclude<ValidationCode, 'VALID' | 'INVALID_FORMAT' | 'TOO_MANY_DEVICES'> | null {
  if (!serial) return 'NOT_FOUND'
  if (serial.status === 'REVOKED') return 'REVOKED'
  if (clientStatus === 'SUSPENDED') return 'CLIENT_SUSPENDED'
  if (serial.status === 'SUSPENDED') return 'SUSPENDED'
  if (serial.expiresAt !== null && serial.expiresAt <= now) return 'EXPIRED'
  return null
}

/** Whether a device not yet holding a slot may take one. */
export function hasFreeSlot (serial: Pick<SerialState, 'activeDevices' | 'maxUsageCount'>): boolean {
  return serial.activeDevices < serial.maxUsageCount
}

/** Derived status shown in the API: REVOKED > SUSPENDED > EXPIRED > ACTIVE. */
export function displayStatus (status: string, expiresAt: Date | number | null, now: number): 'ACTIVE' | 'SUSPENDED' | 'REVOKED' | 'EXPIRED' {
  if (status === 'REVOKED' || status === 'SUSPENDED') return status
  const exp = expiresAt instanceof Date ? expiresAt.getTime() : expiresAt
  return exp !== null && exp <= now ? 'EXPIRED' : 'ACTIVE'
}
