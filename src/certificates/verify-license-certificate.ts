// Dependency-free verifier for Serials license certificates (Node's crypto only), for client apps.
//
//   import { verifyLicenseCertificate } from 'serials/verify'
//   const check = verifyLicenseCertificate(certificate, publicKeyPem, { deviceId: myDeviceId })
//   if (!check.valid) refuseToRun(check.reason)
//
// Certificate: base64url(payload JSON) "." base64url(signature), the signature covering the
// ASCII bytes of the first part. RSA-PSS-4096: RSASSA-PSS, SHA-256, 32-byte salt. ED25519: Ed25519.
import { createPublicKey, verify } from 'node:crypto'

export interface LicensePayload {
  v: number
  kid: string
  alg: 'RSA-PSS-4096' | 'ED25519'
  /** serial id */
  sub: string
  /** clientNumber of the owner */
  client: string
  device: string
  maxDevices: number
  demo: boolean
  /** issued at, seconds since the epoch */
  iat: number
  /** expires at, seconds since the epoch */
  exp: number
}

export type VerifyResult =
  | { valid: true, payload: LicensePayload }
  | { valid: false, reason: 'MALFORMED' | 'BAD_SIGNATURE' | 'WRONG_DEVICE' | 'EXPIRED' | 'NOT_YET_VALID' }

export function verifyLicenseCertificate (certificate: string, publicKeyPem: string, options: { deviceId?: string, now?: Date } = {}): VerifyResult {
  const parts = typeof certificate === 'string' ? certificate.split('.') : []
  if (parts.length !== 2 || !parts[0] || !parts[1]) return { valid: false, reason: 'MALFORMED' }
  let payload: LicensePayload
  try {
    payload = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as LicensePayload
  } catch {
    return { valid: false, reason: 'MALFORMED' }
  }
  if (typeof payload !== 'object' || payload === null || (payload.alg !== 'RSA-PSS-4096' && payload.alg !== 'ED25519')) {
    return { valid: false, reason: 'MALFORMED' }
  }
  let ok = false
  try {
    const key = createPublicKey(publicKeyPem)
    const data = Buffer.from(parts[0], 'ascii')
    const signature = Buffer.from(parts[1], 'base64url')
    ok = payload.alg === 'ED25519'
      ? verify(null, data, key, signature)
      : verify('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, signature)
  } catch {
    ok = false
  }
  if (!ok) return { valid: false, reason: 'BAD_SIGNATURE' }
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000)
  if (options.deviceId !== undefined && payload.device !== options.deviceId) return { valid: false, reason: 'WRONG_DEVICE' }
  if (typeof payload.iat === 'number' && payload.iat > now + 300) return { valid: false, reason: 'NOT_YET_VALID' }
  if (typeof payload.exp !== 'number' || payload.exp <= now) return { valid: false, reason: 'EXPIRED' }
  return { valid: true, payload }
}
