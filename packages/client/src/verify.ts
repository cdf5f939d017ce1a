// The one implementation of Serials' signed formats, shared by the SDK (WebCrypto) and the service's
// own `verifyLicenseCertificate` (which imports this file and checks signatures with node:crypto).
//
// Compact form: base64url(payload JSON) "." base64url(signature), the signature covering the ASCII
// bytes of the first part; both parts canonical base64url without padding. RSA-PSS-4096 is RSASSA-PSS
// with SHA-256 and a 32-byte salt; ED25519 is plain Ed25519.
import { decodeBase64Pem, decodeBase64Url, encodeBase64Url } from './base64url.ts'
import { LicenseClientError } from './errors.ts'

export type SigningAlgorithm = 'RSA-PSS-4096' | 'ED25519'
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = ['RSA-PSS-4096', 'ED25519']

/** Allowed difference between clocks, in seconds: an `iat` further ahead than this is not yet valid. */
export const CLOCK_SKEW_SECONDS = 300

/** A license certificate's payload. Fields the service adds later are kept as they came. */
export interface LicensePayload {
  v: number
  kid: string
  alg: SigningAlgorithm
  /** Serial id (`ser_…`). */
  sub: string
  /** clientNumber of the owner. */
  client: string
  device: string
  maxDevices: number
  demo: boolean
  /** Issued at, seconds since the epoch. */
  iat: number
  /** Expires at, seconds since the epoch. */
  exp: number
  /** Entitlement codes (services with policies). */
  ent?: string[]
  /** Policy id, or null without a policy (services with policies). */
  pol?: string | null
  [field: string]: unknown
}

/** A signed revocation list's payload (`GET /api/v1/revocations`). */
export interface RevocationPayload {
  v: number
  kid: string
  alg: SigningAlgorithm
  /** Issued at, seconds since the epoch. */
  iat: number
  /** Fetch a fresh list before this, seconds since the epoch. */
  exp: number
  /** Ids of revoked serials that may still have a certificate in its lifetime. */
  serials: string[]
  [field: string]: unknown
}

export interface CompactToken {
  payload: Record<string, unknown>
  /** The bytes the signature covers: the ASCII of the first part. */
  signed: Uint8Array
  signature: Uint8Array
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * Splits and decodes a compact token; null when it is not exactly two canonical base64url parts
 * around one dot with a JSON object naming a known `alg`. No signature is checked here.
 */
export function decodeCompact (token: unknown): CompactToken | null {
  if (typeof token !== 'string') return null
  const dot = token.indexOf('.')
  if (dot <= 0 || dot === token.length - 1 || token.indexOf('.', dot + 1) !== -1) return null
  const head = token.slice(0, dot)
  const payloadBytes = decodeBase64Url(head)
  const signature = decodeBase64Url(token.slice(dot + 1))
  if (!payloadBytes || !signature) return null
  let payload: unknown
  try {
    payload = JSON.parse(decoder.decode(payloadBytes))
  } catch {
    return null
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return null
  const alg = (payload as { alg?: unknown }).alg
  if (!SIGNING_ALGORITHMS.includes(alg as SigningAlgorithm)) return null
  return { payload: payload as Record<string, unknown>, signed: encoder.encode(head), signature }
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

export function isLicensePayload (p: Record<string, unknown>): p is LicensePayload {
  return typeof p.sub === 'string' && typeof p.device === 'string' && isTime(p.iat) && isTime(p.exp)
}

export function isRevocationPayload (p: Record<string, unknown>): p is RevocationPayload {
  return isTime(p.iat) && isTime(p.exp) && Array.isArray(p.serials) && p.serials.every((s) => typeof s === 'string')
}

export type ClaimFailure = 'WRONG_DEVICE' | 'NOT_YET_VALID' | 'REVOKED' | 'EXPIRED'

/**
 * The checks after the signature, first failure wins. `now` in milliseconds. `revoked`: serial ids
 * from a verified revocation list.
 */
export function checkLicenseClaims (payload: LicensePayload, options: { deviceId?: string | undefined, now: number, revoked?: ReadonlySet<string> | undefined }): ClaimFailure | null {
  const now = Math.floor(options.now / 1000)
  if (options.deviceId !== undefined && payload.device !== options.deviceId) return 'WRONG_DEVICE'
  if (payload.iat > now + CLOCK_SKEW_SECONDS) return 'NOT_YET_VALID'
  if (options.revoked?.has(payload.sub)) return 'REVOKED'
  if (payload.exp <= now) return 'EXPIRED'
  return null
}

/** JSON with object keys sorted at every level: the byte string that answer signatures cover. */
export function canonicalJson (value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  // As JSON.stringify writes a Date (the service signs and hashes values that hold them).
  if (value instanceof Date) return JSON.stringify(value.toISOString())
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
}

/** The fields of a validation answer that its signature covers (README "Checking a signed answer"). */
export interface SignedAnswerFields {
  valid: boolean
  code: string
  /** Signed too, so a man in the middle cannot unlock features; absent in answers of old servers. */
  entitlements?: string[]
  expiresAt: string | null
  isDemo: boolean | null
  leaseExpiresAt?: string | null
  nonce: string
  remainingDevices: number | null
  serverTime: string
}

/** The exact bytes the service signs for a validation answer with a nonce. */
export function answerSigningInput (answer: SignedAnswerFields, deviceId: string): Uint8Array {
  return encoder.encode(canonicalJson({
    code: answer.code,
    deviceId,
    entitlements: answer.entitlements ?? [],
    expiresAt: answer.expiresAt,
    isDemo: answer.isDemo,
    leaseExpiresAt: answer.leaseExpiresAt ?? null,
    nonce: answer.nonce,
    remainingDevices: answer.remainingDevices,
    serverTime: answer.serverTime,
    valid: answer.valid
  }))
}

// ---- WebCrypto -------------------------------------------------------------------------------
// Structural types, so this file compiles with either the DOM or the Node type definitions.

interface SubtleLike {
  importKey (format: string, keyData: unknown, algorithm: unknown, extractable: boolean, usages: string[]): Promise<unknown>
  exportKey (format: string, key: unknown): Promise<ArrayBuffer>
  verify (algorithm: unknown, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>
  digest (algorithm: string, data: Uint8Array): Promise<ArrayBuffer>
}

export function subtleCrypto (): SubtleLike {
  const subtle = (globalThis as unknown as { crypto?: { subtle?: SubtleLike } }).crypto?.subtle
  // Browsers expose crypto.subtle only on secure origins (https, localhost).
  if (!subtle) throw new LicenseClientError('BAD_CONFIGURATION', 'WebCrypto (crypto.subtle) is not available in this runtime; browsers offer it on https pages only')
  return subtle
}

/** A public key ready for verifying, with the service's key id (first 16 hex of SHA-256 of the SPKI). */
export interface VerificationKey {
  algorithm: SigningAlgorithm
  keyId: string
  key: unknown
}

/** The public key as configured: PEM text (SPKI) or the `jwk` of `GET /api/v1/public-key`. */
export type PublicKeyInput = string | { kty: string, [field: string]: unknown }

const ED25519_OID = [0x06, 0x03, 0x2b, 0x65, 0x70]
const RSA_OID = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01]

/** Whether the algorithm identifier near the start of an SPKI holds this OID. */
function contains (bytes: Uint8Array, pattern: number[]): boolean {
  for (let i = 0; i + pattern.length <= Math.min(bytes.length, 64); i++) {
    if (pattern.every((b, j) => bytes[i + j] === b)) return true
  }
  return false
}

function importParams (algorithm: SigningAlgorithm): Record<string, string> {
  return algorithm === 'ED25519' ? { name: 'Ed25519' } : { name: 'RSA-PSS', hash: 'SHA-256' }
}

export async function importVerificationKey (input: PublicKeyInput): Promise<VerificationKey> {
  const subtle = subtleCrypto()
  try {
    let key: unknown
    let algorithm: SigningAlgorithm
    if (typeof input === 'string') {
      const match = /-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/.exec(input)
      const der = match ? decodeBase64Pem(match[1]!) : null
      if (!der) throw new Error('expected a PEM "PUBLIC KEY" (SPKI) block')
      if (contains(der, ED25519_OID)) algorithm = 'ED25519'
      else if (contains(der, RSA_OID)) algorithm = 'RSA-PSS-4096'
      else throw new Error('the key is neither RSA nor Ed25519')
      key = await subtle.importKey('spki', der, importParams(algorithm), true, ['verify'])
    } else {
      if (input.kty === 'OKP' && input.crv === 'Ed25519') algorithm = 'ED25519'
      else if (input.kty === 'RSA') algorithm = 'RSA-PSS-4096'
      else throw new Error(`unsupported JWK kty ${String(input.kty)}`)
      // Only the key material: `alg`, `use`, `kid` from the service would be checked against usages.
      const jwk = algorithm === 'ED25519' ? { kty: 'OKP', crv: 'Ed25519', x: input.x } : { kty: 'RSA', n: input.n, e: input.e }
      key = await subtle.importKey('jwk', jwk, importParams(algorithm), true, ['verify'])
    }
    const spki = new Uint8Array(await subtle.exportKey('spki', key))
    const digest = new Uint8Array(await subtle.digest('SHA-256', spki))
    const keyId = Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, '0')).join('')
    return { algorithm, keyId, key }
  } catch (error) {
    if (error instanceof LicenseClientError) throw error
    throw new LicenseClientError('BAD_CONFIGURATION', `publicKey cannot be used: ${(error as Error).message}`, { cause: error })
  }
}

export async function verifySignature (key: VerificationKey, signed: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const params = key.algorithm === 'ED25519' ? { name: 'Ed25519' } : { name: 'RSA-PSS', saltLength: 32 }
  try {
    return await subtleCrypto().verify(params, key.key, signature, signed)
  } catch {
    return false
  }
}

/** Decodes a compact token and checks its signature with the configured key (never the token's own `alg`). */
export async function verifyCompact (token: unknown, key: VerificationKey): Promise<{ ok: true, payload: Record<string, unknown> } | { ok: false, reason: 'MALFORMED' | 'BAD_SIGNATURE' }> {
  const decoded = decodeCompact(token)
  if (!decoded) return { ok: false, reason: 'MALFORMED' }
  if (decoded.payload.alg !== key.algorithm) return { ok: false, reason: 'BAD_SIGNATURE' }
  if (!await verifySignature(key, decoded.signed, decoded.signature)) return { ok: false, reason: 'BAD_SIGNATURE' }
  return { ok: true, payload: decoded.payload }
}

export { decodeBase64Url, encodeBase64Url }
