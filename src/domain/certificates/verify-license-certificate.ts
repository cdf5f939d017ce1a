// Verifier for Serials license certificates, for Node apps and the service itself:
//
//   import { verifyLicenseCertificate } from 'serials/verify'
//   const check = verifyLicenseCertificate(certificate, publicKeyPem, { deviceId: myDeviceId })
//   if (!check.valid) refuseToRun(check.reason)
//
// Decoding (canonical base64url only) and the claim checks are the client SDK's own code
// (packages/client/src/verify.ts), so a fix lands once; only the signature check is node:crypto
// here, because this function is synchronous. Apps on browsers or Electron use @serials/client.
import { createPublicKey, verify } from 'node:crypto'
import { checkLicenseClaims, decodeCompact, isLicensePayload, type LicensePayload } from '../../../packages/client/src/verify.ts'

export type { LicensePayload }

export type VerifyResult =
  | { valid: true, payload: LicensePayload }
  | { valid: false, reason: 'MALFORMED' | 'BAD_SIGNATURE' | 'WRONG_DEVICE' | 'EXPIRED' | 'NOT_YET_VALID' }

export function verifyLicenseCertificate (certificate: string, publicKeyPem: string, options: { deviceId?: string, now?: Date } = {}): VerifyResult {
  const decoded = decodeCompact(certificate)
  if (!decoded || !isLicensePayload(decoded.payload)) return { valid: false, reason: 'MALFORMED' }
  const payload = decoded.payload
  let ok = false
  try {
    const key = createPublicKey(publicKeyPem)
    // The key decides the algorithm; the payload's `alg` must agree with it, never choose it.
    const keyAlg = key.asymmetricKeyType === 'ed25519' ? 'ED25519' : key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss' ? 'RSA-PSS-4096' : null
    ok = keyAlg === payload.alg && (payload.alg === 'ED25519'
      ? verify(null, decoded.signed, key, decoded.signature)
      : verify('sha256', decoded.signed, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, decoded.signature))
  } catch {
    ok = false
  }
  if (!ok) return { valid: false, reason: 'BAD_SIGNATURE' }
  const failure = checkLicenseClaims(payload, { deviceId: options.deviceId, now: (options.now ?? new Date()).getTime() })
  // No revocation list here, so REVOKED cannot occur.
  if (failure && failure !== 'REVOKED') return { valid: false, reason: failure }
  return { valid: true, payload }
}
