// Pure validation rules: no I/O, `now` passed in. Guard clauses in the contract's order; the
// first failure wins.
import type { SerialState } from '../cached-state.ts'

export const VALIDATION_CODES = [
  'VALID', 'INVALID_FORMAT', 'NOT_FOUND', 'REVOKED', 'CLIENT_SUSPENDED', 'SUSPENDED', 'EXPIRED', 'TOO_MANY_DEVICES', 'TOO_MANY_ACTIVATIONS'
] as const
export type ValidationCode = typeof VALIDATION_CODES[number]

export const MESSAGES: Record<ValidationCode, string> = {
  VALID: 'Serial is valid for this device',
  INVALID_FORMAT: 'Serial number is not well formed',
  NOT_FOUND: 'Serial number not found',
  REVOKED: 'Serial has been revoked',
  CLIENT_SUSPENDED: 'The owner of this serial is suspended',
  SUSPENDED: 'Serial is suspended',
  EXPIRED: 'Serial has expired',
  TOO_MANY_DEVICES: 'Serial is already active on the maximum number of devices',
  TOO_MANY_ACTIVATIONS: 'Serial has reached its new-device activations for the last 24 hours'
}

/** Checks that do not depend on the device. Returns the failing code, or null when they pass. */
export function checkSerial (serial: SerialState | undefined, clientStatus: string | undefined, now: number): Exclude<ValidationCode, 'VALID' | 'INVALID_FORMAT' | 'TOO_MANY_DEVICES' | 'TOO_MANY_ACTIVATIONS'> | null {
  if (!serial) return 'NOT_FOUND'
  if (serial.status === 'REVOKED') return 'REVOKED'
  if (clientStatus === 'SUSPENDED') return 'CLIENT_SUSPENDED'
  if (serial.status === 'SUSPENDED') return 'SUSPENDED'
  if (serial.expiresAt !== null && serial.expiresAt <= now) return 'EXPIRED'
  return null
}

/** Whether a device not yet holding a slot may take one. */
export function hasFreeSlot (serial: Pick<SerialState, 'activeDevices' | 'maxDevices'>): boolean {
  return serial.activeDevices < serial.maxDevices
}

/**
 * The checks a new device passes before it takes a slot, after the serial checks: the device
 * limit first, then the rolling activation cap (null = no cap). `activationsInWindow` counts
 * activations in the last 24 h, releases included, so release-and-reactivate cannot reset it.
 */
export function checkNewDevice (serial: Pick<SerialState, 'activeDevices' | 'maxDevices'>, activationsInWindow: number, maxActivationsPerDay: number | null): 'TOO_MANY_DEVICES' | 'TOO_MANY_ACTIVATIONS' | null {
  if (!hasFreeSlot(serial)) return 'TOO_MANY_DEVICES'
  if (maxActivationsPerDay !== null && activationsInWindow >= maxActivationsPerDay) return 'TOO_MANY_ACTIVATIONS'
  return null
}
