// createLicenseClient: what an app needs on the customer's machine. Every answer that decides
// whether the app runs is checked against the vendor's public key before it is believed.
import { decodeBase64Url, encodeBase64Url } from './base64url.ts'
import { LicenseClientError } from './errors.ts'
import {
  answerSigningInput, checkLicenseClaims, CLOCK_SKEW_SECONDS, importVerificationKey, isLicensePayload,
  isRevocationPayload, subtleCrypto, verifyCompact, verifySignature,
  type LicensePayload, type PublicKeyInput, type RevocationPayload, type VerificationKey
} from './verify.ts'

/** The service's validation codes, in the order it checks them. */
export type ValidationCode = 'INVALID_FORMAT' | 'NOT_FOUND' | 'REVOKED' | 'CLIENT_SUSPENDED' | 'SUSPENDED' | 'EXPIRED' | 'TOO_MANY_DEVICES' | 'TOO_MANY_ACTIVATIONS' | 'VALID'

/** Why `verifyOffline` refused a certificate. */
export type OfflineReason = 'MALFORMED' | 'BAD_SIGNATURE' | 'WRONG_DEVICE' | 'EXPIRED' | 'REVOKED' | 'CLOCK_TAMPERED'

/** A `localStorage`-shaped store (browsers and Electron renderers have one; Node gets memory). */
export interface StorageLike {
  getItem (key: string): string | null
  setItem (key: string, value: string): void
  removeItem (key: string): void
}

export interface ResponseLike {
  status: number
  headers: { get (name: string): string | null }
  text (): Promise<string>
}
export type FetchLike = (url: string, init: { method: string, headers: Record<string, string>, body?: string, signal?: AbortSignal }) => Promise<ResponseLike>

export interface LicenseClientOptions {
  /** Where the service runs, e.g. `https://licenses.example.com`. */
  baseUrl: string
  /** The service's public key: PEM text or the `jwk` object of `GET /api/v1/public-key`. Ship it with the app. */
  publicKey: PublicKeyInput
  /** A stable id of this machine or installation (1–128 characters). */
  deviceId: string
  /** Default: `globalThis.localStorage` when present, else memory (lost when the process ends). */
  storage?: StorageLike
  /** The local clock in epoch milliseconds. Default `Date.now`. */
  now?: () => number
  /** Default: the global `fetch`. */
  fetch?: FetchLike
  /** REST prefix of the service. Default `/api/v1`. */
  apiPrefix?: string
  /** GraphQL path of the service (certificates are issued there). Default `/graphql`. */
  graphqlPath?: string
  /** How long the last verified answer is served (marked stale) while the service is unreachable, in ms. Default 3 days. */
  offlineGraceMs?: number
  /** Per-request timeout, in ms. Default 10 s. */
  timeoutMs?: number
  /** Prefix of every storage key. Default `serials:`. */
  storageKeyPrefix?: string
  heartbeats?: HeartbeatOptions
}

export interface HeartbeatOptions {
  /** Fraction of the remaining lease after which the next beat is sent. Default 0.5. */
  leaseFraction?: number
  /** Interval when the answer carries no lease (node-locked serials), in ms. Default 15 min. */
  defaultIntervalMs?: number
  /** Never beat more often than this, in ms. Default 5 s. */
  minIntervalMs?: number
  /** Longest wait between retries after errors, in ms. Default 5 min. */
  maxBackoffMs?: number
  /** Random share taken off each interval so machines do not beat in step (0–1). Default 0.1. */
  jitter?: number
  /** Test hooks: the timer functions and the random source. */
  setTimeout?: (fn: () => void, ms: number) => unknown
  clearTimeout?: (handle: unknown) => void
  random?: () => number
}

/**
 * A validation answer whose signature and nonce verified. The signature covers every field here
 * except `message` (prose for logs) and `stale` (set by this client): see answerSigningInput.
 */
export interface LicenseValidation {
  valid: boolean
  code: ValidationCode
  /** The code in words, for logs; not signed, so never branch on it. */
  message: string
  /** ISO time the serial expires; null = never. */
  expiresAt: string | null
  remainingDevices: number | null
  isDemo: boolean | null
  /** ISO time of the service's clock when it answered. */
  serverTime: string
  /** Entitlement codes, in the service's order; covered by the signature (empty unless VALID). */
  entitlements: string[]
  /** Floating seats: when this device's lease lapses without a heartbeat (ISO time, covered by the signature); null otherwise. */
  leaseExpiresAt: string | null
  /** true: the service could not be reached and this is the last verified answer, within the grace period. */
  stale: boolean
}

/** A heartbeat's answer. Not signed (a heartbeat sends no nonce): it paces the loop; validate() is the check to trust. */
export interface HeartbeatResult {
  alive: boolean
  code: ValidationCode
  leaseExpiresAt: string | null
}

export interface HeartbeatHandlers {
  onBeat? (result: HeartbeatResult): void
  /** An attempt failed; the next one follows after `retryInMs`. */
  onError? (error: LicenseClientError, retryInMs: number): void
  /** The service answered `alive: false`: the seat is gone and no more beats are sent. */
  onStop? (result: HeartbeatResult): void
}

export interface RevocationList {
  /** The signed compact token, to pass to `verifyOffline` or keep. */
  token: string
  serials: string[]
  issuedAt: number
  expiresAt: number
}

/** The body of `GET /api/v1/revocations`, as the service sends it: `list` is the signed compact token. */
export interface RevocationListBody {
  list: string
  algorithm?: string
  keyId?: string
  issuedAt?: string
  expiresAt?: string
}

/**
 * A revocation list in any form an app is likely to hold: the compact token, the body of
 * `GET /api/v1/revocations` (the object or its JSON text), or what `fetchRevocations()` returned.
 * Only the signed token counts: the body's other fields are descriptive and never trusted.
 */
export type RevocationsInput = string | RevocationList | RevocationListBody

export interface OfflineResult {
  valid: boolean
  reason?: OfflineReason
  /** Says which part failed, for logs (never shown to the end user as a reason code). */
  message?: string
  payload?: LicensePayload
}

export interface LicenseClient {
  validate (serialNumber: string): Promise<LicenseValidation>
  heartbeat (serialNumber: string): Promise<HeartbeatResult>
  startHeartbeats (serialNumber: string, handlers?: HeartbeatHandlers): () => void
  checkout (serialNumber: string, ttlDays: number): Promise<string>
  verifyOffline (certificate: string, options?: { revocations?: RevocationsInput }): Promise<OfflineResult>
  fetchRevocations (): Promise<RevocationList>
  /** The latest time (epoch ms) vouched for by the service that this client has seen; 0 = none. */
  trustedTime (): number
}

const VALIDATION_CODES = new Set<string>(['INVALID_FORMAT', 'NOT_FOUND', 'REVOKED', 'CLIENT_SUSPENDED', 'SUSPENDED', 'EXPIRED', 'TOO_MANY_DEVICES', 'TOO_MANY_ACTIVATIONS', 'VALID'])
const SKEW_MS = CLOCK_SKEW_SECONDS * 1000

function memoryStorage (): StorageLike {
  const map = new Map<string, string>()
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => { map.set(k, v) }, removeItem: (k) => { map.delete(k) } }
}

function defaultStorage (): StorageLike {
  try {
    const local = (globalThis as { localStorage?: StorageLike }).localStorage
    if (local) return local
  } catch {
    // Sandboxed frames throw on access: fall through to memory.
  }
  return memoryStorage()
}

function normaliseSerial (serialNumber: string): string {
  return serialNumber.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1')
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string'

/** The signed answer as it came over the wire, kept in storage and re-verified when read back. */
interface RawAnswer {
  valid: boolean
  code: ValidationCode
  message: string
  expiresAt: string | null
  remainingDevices: number | null
  isDemo: boolean | null
  serverTime: string
  nonce: string
  signature: string
  entitlements: string[]
  leaseExpiresAt: string | null
}

function parseAnswer (body: unknown): RawAnswer | null {
  if (!isObject(body)) return null
  const b = body
  if (typeof b.valid !== 'boolean' || typeof b.code !== 'string' || !VALIDATION_CODES.has(b.code) || typeof b.serverTime !== 'string' || Number.isNaN(Date.parse(b.serverTime))) return null
  if (!isNullableString(b.expiresAt ?? null) || !(b.remainingDevices == null || typeof b.remainingDevices === 'number') || !(b.isDemo == null || typeof b.isDemo === 'boolean')) return null
  return {
    valid: b.valid,
    code: b.code as ValidationCode,
    message: typeof b.message === 'string' ? b.message : '',
    expiresAt: (b.expiresAt ?? null) as string | null,
    remainingDevices: (b.remainingDevices ?? null) as number | null,
    isDemo: (b.isDemo ?? null) as boolean | null,
    serverTime: b.serverTime,
    nonce: typeof b.nonce === 'string' ? b.nonce : '',
    signature: typeof b.signature === 'string' ? b.signature : '',
    entitlements: Array.isArray(b.entitlements) ? b.entitlements.filter((e): e is string => typeof e === 'string') : [],
    leaseExpiresAt: typeof b.leaseExpiresAt === 'string' ? b.leaseExpiresAt : null
  }
}

export function createLicenseClient (options: LicenseClientOptions): LicenseClient {
  if (!options || typeof options.baseUrl !== 'string' || options.baseUrl.length === 0) throw new LicenseClientError('BAD_CONFIGURATION', 'baseUrl is required')
  if (typeof options.deviceId !== 'string' || options.deviceId.length < 1 || options.deviceId.length > 128) throw new LicenseClientError('BAD_CONFIGURATION', 'deviceId must be 1 to 128 characters')
  if (options.publicKey === undefined || options.publicKey === null) throw new LicenseClientError('BAD_CONFIGURATION', 'publicKey is required')
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  const prefix = (options.apiPrefix ?? '/api/v1').replace(/\/+$/, '')
  const graphqlPath = options.graphqlPath ?? '/graphql'
  const deviceId = options.deviceId
  const storage = options.storage ?? defaultStorage()
  const now = options.now ?? (() => Date.now())
  const timeoutMs = options.timeoutMs ?? 10_000
  const graceMs = options.offlineGraceMs ?? 3 * 86_400_000
  const keyPrefix = options.storageKeyPrefix ?? 'serials:'
  const fetchImpl: FetchLike | undefined = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch?.bind(globalThis)
  const hb = options.heartbeats ?? {}
  const schedule = hb.setTimeout ?? ((fn: () => void, ms: number) => setTimeout(fn, ms))
  const cancel = hb.clearTimeout ?? ((handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>))
  const random = hb.random ?? Math.random
  let keyPromise: Promise<VerificationKey> | undefined
  // Service clock minus local clock, from the last signed answer; used to read lease times.
  let serverOffsetMs = 0

  const key = (): Promise<VerificationKey> => {
    if (!keyPromise) {
      keyPromise = importVerificationKey(options.publicKey)
      // A failed import is not cached, so a later call reports the same clear error.
      keyPromise.catch(() => { keyPromise = undefined })
    }
    return keyPromise
  }

  // ---- storage ----
  const TRUSTED = `${keyPrefix}trusted-time`
  const REVOCATIONS = `${keyPrefix}revocations`
  function read<T> (name: string): T | undefined {
    try {
      const text = storage.getItem(name)
      return text === null ? undefined : JSON.parse(text) as T
    } catch {
      return undefined
    }
  }
  function write (name: string, value: unknown): void {
    try { storage.setItem(name, JSON.stringify(value)) } catch { /* full or unavailable storage only loses the cache */ }
  }
  function trustedTime (): number {
    const value = read<unknown>(TRUSTED)
    return typeof value === 'number' && Number.isFinite(value) ? value : 0
  }
  function trust (time: number): void {
    if (Number.isFinite(time) && time > trustedTime()) write(TRUSTED, time)
  }
  function clockTampered (): boolean {
    return now() < trustedTime() - SKEW_MS
  }
  async function answerKey (serialNumber: string): Promise<string> {
    const digest = new Uint8Array(await subtleCrypto().digest('SHA-256', new TextEncoder().encode(normaliseSerial(serialNumber))))
    // A hash, not the number: the storage key may end up in logs or synced profiles.
    return `${keyPrefix}answer:${Array.from(digest.slice(0, 12), (b) => b.toString(16).padStart(2, '0')).join('')}`
  }

  // ---- transport ----
  /** Any failure to get an HTTP answer, or an answer meaning "not now" (429, 5xx). */
  class Unreachable extends Error {
    constructor (readonly error: LicenseClientError) { super(error.message) }
  }

  async function request (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, body: unknown, headers: ResponseLike['headers'] }> {
    if (!fetchImpl) throw new LicenseClientError('BAD_CONFIGURATION', 'no fetch in this runtime: pass options.fetch')
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), timeoutMs)
    let response: ResponseLike
    let text: string
    try {
      response = await fetchImpl(`${baseUrl}${path}`, {
        method,
        headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: controller.signal
      })
      text = await response.text()
    } catch (error) {
      const hint = controller.signal.aborted ? '' : corsHint()
      throw new Unreachable(new LicenseClientError('NETWORK_ERROR', `${method} ${path}: the service could not be reached (${(error as Error)?.message ?? String(error)})${hint}`, { cause: error }))
    } finally {
      clearTimeout(timer)
    }
    let parsed: unknown
    try { parsed = text.length ? JSON.parse(text) : undefined } catch { parsed = undefined }
    const status = response.status
    if (status === 429) {
      const retry = Number(response.headers.get('retry-after'))
      throw new Unreachable(new LicenseClientError('RATE_LIMITED', `${method} ${path}: rate limited`, { status, serverCode: 'RATE_LIMITED', ...(Number.isFinite(retry) && retry > 0 ? { retryAfterSeconds: retry } : {}) }))
    }
    if (status >= 500) throw new Unreachable(new LicenseClientError('HTTP_ERROR', `${method} ${path}: service error ${status}`, { status, ...serverError(parsed) }))
    if (status >= 400) {
      const details = serverError(parsed)
      throw new LicenseClientError('HTTP_ERROR', `${method} ${path}: ${status}${details.serverCode ? ` ${details.serverCode}` : ''}${details.message ? `: ${details.message}` : ''}`, { status, ...(details.serverCode ? { serverCode: details.serverCode } : {}) })
    }
    return { status, body: parsed, headers: response.headers }
  }

  /**
   * A browser hides why a cross-origin call failed: a CORS refusal and an outage reject alike, so
   * both stay NETWORK_ERROR and the message names the other possible cause. Empty outside a page
   * (or worker) on another origin than the service.
   */
  function corsHint (): string {
    const here = (globalThis as { location?: { origin?: unknown } }).location?.origin
    if (typeof here !== 'string') return ''
    let service: string
    try { service = new URL(baseUrl).origin } catch { return '' }
    if (service === here) return ''
    return `; or the browser refused it for CORS: this page's origin (${here}) differs from the service's (${service}), which answers it only when its CORS_ORIGINS lists that origin`
  }

  function serverError (body: unknown): { serverCode?: string, message?: string } {
    if (!isObject(body)) return {}
    // GraphQL errors carry the contract's fields in `extensions`.
    if (Array.isArray(body.errors) && isObject(body.errors[0])) {
      const first = body.errors[0]
      const extensions = isObject(first.extensions) ? first.extensions : {}
      return { ...(typeof extensions.code === 'string' ? { serverCode: extensions.code } : {}), ...(typeof first.message === 'string' ? { message: first.message } : {}) }
    }
    return { ...(typeof body.code === 'string' ? { serverCode: body.code } : {}), ...(typeof body.message === 'string' ? { message: body.message } : {}) }
  }

  // ---- validation ----
  async function verifyAnswer (answer: RawAnswer): Promise<boolean> {
    if (!answer.signature) return false
    const signature = decodeBase64Url(answer.signature)
    if (!signature) return false
    return verifySignature(await key(), answerSigningInput(answer, deviceId), signature)
  }

  function toValidation (answer: RawAnswer, stale: boolean): LicenseValidation {
    return {
      valid: answer.valid,
      code: answer.code,
      message: answer.message,
      expiresAt: answer.expiresAt,
      remainingDevices: answer.remainingDevices,
      isDemo: answer.isDemo,
      serverTime: answer.serverTime,
      entitlements: answer.entitlements,
      leaseExpiresAt: answer.leaseExpiresAt,
      stale
    }
  }

  async function staleAnswer (serialNumber: string, cause: LicenseClientError): Promise<LicenseValidation> {
    if (clockTampered()) throw new LicenseClientError('CLOCK_TAMPERED', 'the local clock is behind a time the service vouched for', { cause })
    const stored = read<{ deviceId: string, answer: RawAnswer }>(await answerKey(serialNumber))
    const answer = stored ? parseAnswer(stored.answer) : null
    // Re-verified on every read: storage is on the customer's machine and may have been edited.
    if (!stored || stored.deviceId !== deviceId || !answer || !await verifyAnswer(answer)) throw cause
    const age = now() - Date.parse(answer.serverTime)
    if (age > graceMs) throw new LicenseClientError(cause.code, `${cause.message}; the last verified answer is older than the offline grace period`, { cause })
    const result = toValidation(answer, true)
    // The signed expiry still applies while offline.
    if (result.valid && result.expiresAt !== null && Date.parse(result.expiresAt) <= now()) {
      return { ...result, valid: false, code: 'EXPIRED', message: 'Serial number has expired' }
    }
    return result
  }

  async function validate (serialNumber: string): Promise<LicenseValidation> {
    if (typeof serialNumber !== 'string') throw new TypeError('serialNumber must be a string')
    const nonceBytes = new Uint8Array(18)
    ;(globalThis as unknown as { crypto: { getRandomValues (a: Uint8Array): Uint8Array } }).crypto.getRandomValues(nonceBytes)
    const nonce = encodeBase64Url(nonceBytes)
    let response: Awaited<ReturnType<typeof request>>
    try {
      response = await request('POST', `${prefix}/serials/validate`, { serialNumber, deviceId, nonce })
    } catch (error) {
      if (error instanceof Unreachable) return staleAnswer(serialNumber, error.error)
      throw error
    }
    const answer = parseAnswer(response.body)
    if (!answer) throw new LicenseClientError('BAD_RESPONSE', 'the validation answer is not in the expected shape')
    if (!await verifyAnswer(answer)) throw new LicenseClientError('BAD_SIGNATURE', 'the validation answer is not signed by the configured public key')
    // Checked after the signature: the signature covers the nonce, so a mismatch is a replay.
    if (answer.nonce !== nonce) throw new LicenseClientError('NONCE_MISMATCH', 'the validation answer is for another request (replayed)')
    const serverTime = Date.parse(answer.serverTime)
    serverOffsetMs = serverTime - now()
    trust(serverTime)
    write(await answerKey(serialNumber), { deviceId, answer })
    return toValidation(answer, false)
  }

  // ---- heartbeats ----
  async function heartbeat (serialNumber: string): Promise<HeartbeatResult> {
    let response: Awaited<ReturnType<typeof request>>
    try {
      response = await request('POST', `${prefix}/serials/heartbeat`, { serialNumber, deviceId })
    } catch (error) {
      throw error instanceof Unreachable ? error.error : error
    }
    const b = response.body
    if (!isObject(b) || typeof b.alive !== 'boolean' || typeof b.code !== 'string' || !VALIDATION_CODES.has(b.code) || !isNullableString(b.leaseExpiresAt ?? null)) {
      throw new LicenseClientError('BAD_RESPONSE', 'the heartbeat answer is not in the expected shape')
    }
    return { alive: b.alive, code: b.code as ValidationCode, leaseExpiresAt: (b.leaseExpiresAt ?? null) as string | null }
  }

  function startHeartbeats (serialNumber: string, handlers: HeartbeatHandlers = {}): () => void {
    const fraction = hb.leaseFraction ?? 0.5
    const minMs = hb.minIntervalMs ?? 5000
    const defaultMs = hb.defaultIntervalMs ?? 15 * 60_000
    const maxBackoffMs = hb.maxBackoffMs ?? 5 * 60_000
    const jitter = Math.min(Math.max(hb.jitter ?? 0.1, 0), 1)
    let stopped = false
    let timer: unknown
    let failures = 0

    const next = (ms: number) => {
      if (stopped) return
      timer = schedule(() => { void beat() }, Math.max(0, Math.round(ms)))
    }
    const intervalFor = (result: HeartbeatResult): number => {
      let ms = defaultMs
      if (result.leaseExpiresAt !== null) {
        const remaining = Date.parse(result.leaseExpiresAt) - (now() + serverOffsetMs)
        ms = remaining * fraction
      }
      // Jitter only shortens the wait, so a beat never comes later than the fraction of the lease.
      return Math.max(minMs, ms * (1 - jitter * random()))
    }
    const beat = async () => {
      if (stopped) return
      try {
        const result = await heartbeat(serialNumber)
        if (stopped) return
        failures = 0
        if (!result.alive) {
          stopped = true
          handlers.onStop?.(result)
          return
        }
        handlers.onBeat?.(result)
        next(intervalFor(result))
      } catch (error) {
        if (stopped) return
        failures++
        const cause = error instanceof LicenseClientError ? error : new LicenseClientError('BAD_RESPONSE', String((error as Error)?.message ?? error), { cause: error })
        // Exponential back-off with jitter; a Retry-After from the service wins when longer.
        const backoff = Math.min(maxBackoffMs, 1000 * 2 ** Math.min(failures - 1, 20)) * (1 - jitter * random())
        const wait = Math.max(backoff, (cause.retryAfterSeconds ?? 0) * 1000)
        handlers.onError?.(cause, wait)
        next(wait)
      }
    }
    next(0)
    return () => {
      stopped = true
      if (timer !== undefined) cancel(timer)
    }
  }

  // ---- certificates and revocations ----
  const CHECKOUT = 'mutation ($input: IssueLicenseCertificateInput!) { issueLicenseCertificate(input: $input) { certificate } }'

  async function checkout (serialNumber: string, ttlDays: number): Promise<string> {
    let response: Awaited<ReturnType<typeof request>>
    try {
      response = await request('POST', graphqlPath, { query: CHECKOUT, variables: { input: { serialNumber, deviceId, ttlDays } } })
    } catch (error) {
      throw error instanceof Unreachable ? error.error : error
    }
    const body = response.body
    const failure = isObject(body) && Array.isArray(body.errors) && isObject(body.errors[0]) ? body.errors[0] : undefined
    if (failure) {
      const extensions = isObject(failure.extensions) ? failure.extensions : {}
      const serverCode = typeof extensions.code === 'string' ? extensions.code : undefined
      throw new LicenseClientError('HTTP_ERROR', `checkout refused${serverCode ? ` (${serverCode})` : ''}: ${String(failure.message)}`, {
        ...(typeof extensions.statusCode === 'number' ? { status: extensions.statusCode } : {}),
        ...(serverCode ? { serverCode } : {})
      })
    }
    const data = isObject(body) && isObject(body.data) && isObject(body.data.issueLicenseCertificate) ? body.data.issueLicenseCertificate : undefined
    const certificate = data?.certificate
    if (typeof certificate !== 'string') throw new LicenseClientError('BAD_RESPONSE', 'the checkout answer holds no certificate')
    const check = await verifyOffline(certificate)
    if (!check.valid) {
      throw new LicenseClientError(check.reason === 'CLOCK_TAMPERED' ? 'CLOCK_TAMPERED' : check.reason === 'BAD_SIGNATURE' ? 'BAD_SIGNATURE' : 'BAD_RESPONSE',
        `the issued certificate does not verify here: ${check.reason}`)
    }
    return certificate
  }

  async function verifyList (token: string): Promise<{ ok: true, list: RevocationList } | { ok: false, reason: 'MALFORMED' | 'BAD_SIGNATURE' }> {
    const checked = await verifyCompact(token, await key())
    if (!checked.ok) return checked
    if (!isRevocationPayload(checked.payload)) return { ok: false, reason: 'MALFORMED' }
    const p: RevocationPayload = checked.payload
    return { ok: true, list: { token, serials: p.serials, issuedAt: p.iat * 1000, expiresAt: p.exp * 1000 } }
  }

  /** The compact token inside any RevocationsInput; undefined when there is none. */
  function revocationToken (input: unknown): string | undefined {
    let value = input
    // The endpoint's JSON text: a compact token never starts with `{` (base64url has no such character).
    if (typeof value === 'string' && value.trimStart().startsWith('{')) {
      try { value = JSON.parse(value) } catch { return undefined }
    }
    if (typeof value === 'string') return value
    if (!isObject(value)) return undefined
    if (typeof value.token === 'string') return value.token
    if (typeof value.list === 'string') return value.list
    return undefined
  }

  /** The stored list, re-verified; undefined when none or when storage was altered. */
  async function storedList (): Promise<{ list: RevocationList, etag: string | null } | undefined> {
    const stored = read<{ token?: unknown, etag?: unknown }>(REVOCATIONS)
    if (!stored || typeof stored.token !== 'string') return undefined
    const checked = await verifyList(stored.token)
    return checked.ok ? { list: checked.list, etag: typeof stored.etag === 'string' ? stored.etag : null } : undefined
  }

  function keepList (list: RevocationList, etag: string | null, current: RevocationList | undefined): void {
    // Never roll back to an older list (a replayed one could hide a revocation).
    if (current && (current.issuedAt > list.issuedAt || (current.token === list.token && etag === null))) return
    write(REVOCATIONS, { token: list.token, etag })
  }

  async function fetchRevocations (): Promise<RevocationList> {
    const stored = await storedList()
    let response: Awaited<ReturnType<typeof request>>
    try {
      response = await request('GET', `${prefix}/revocations`, undefined, stored?.etag ? { 'if-none-match': stored.etag } : {})
    } catch (error) {
      throw error instanceof Unreachable ? error.error : error
    }
    if (response.status === 304 && stored) return stored.list
    const token = isObject(response.body) ? response.body.list : undefined
    if (typeof token !== 'string') throw new LicenseClientError('BAD_RESPONSE', 'the revocation answer holds no list')
    const checked = await verifyList(token)
    if (!checked.ok) throw new LicenseClientError(checked.reason === 'BAD_SIGNATURE' ? 'BAD_SIGNATURE' : 'BAD_RESPONSE', `the revocation list does not verify: ${checked.reason}`)
    trust(checked.list.issuedAt)
    keepList(checked.list, response.headers.get('etag'), stored?.list)
    return checked.list
  }

  async function verifyOffline (certificate: string, opts: { revocations?: RevocationsInput } = {}): Promise<OfflineResult> {
    // Before any other check: a clock set back would make an expired certificate look current.
    if (clockTampered()) return { valid: false, reason: 'CLOCK_TAMPERED', message: 'the local clock is behind a time the service vouched for' }
    const checked = await verifyCompact(certificate, await key())
    if (!checked.ok) return { valid: false, reason: checked.reason, message: `certificate: ${checked.reason}` }
    if (!isLicensePayload(checked.payload)) return { valid: false, reason: 'MALFORMED', message: 'certificate: payload lacks sub, device, iat or exp' }
    const payload = checked.payload
    trust(payload.iat * 1000)

    const revoked = new Set<string>()
    const stored = await storedList()
    for (const id of stored?.list.serials ?? []) revoked.add(id)
    if (opts.revocations !== undefined) {
      const token = revocationToken(opts.revocations)
      // Not a string: verifyCompact calls it MALFORMED, refused like any list that does not verify.
      const list = await verifyList(token ?? '')
      // A list that does not verify is refused, not ignored: dropping it is how one would hide a revocation.
      if (!list.ok) return { valid: false, reason: list.reason, message: `revocation list: ${list.reason}` }
      trust(list.list.issuedAt)
      keepList(list.list, null, stored?.list)
      for (const id of list.list.serials) revoked.add(id)
    }

    // Again: the list just read may have carried a later trusted time.
    if (clockTampered()) return { valid: false, reason: 'CLOCK_TAMPERED', message: 'the local clock is behind the revocation list' }
    const failure = checkLicenseClaims(payload, { deviceId, now: now(), revoked })
    // An iat ahead of the local clock is a time the service vouched for: the clock is behind.
    if (failure === 'NOT_YET_VALID') return { valid: false, reason: 'CLOCK_TAMPERED', message: 'the certificate was issued after the local time' }
    if (failure) return { valid: false, reason: failure, payload }
    return { valid: true, payload }
  }

  return { validate, heartbeat, startHeartbeats, checkout, verifyOffline, fetchRevocations, trustedTime }
}
