/** Why a call failed; a validation that ran returns a result with a `code` instead of throwing. */
export type LicenseClientErrorCode =
  /**
   * The service could not be reached (offline, DNS, timeout) and no usable stored answer exists. In
   * a browser page on another origin, also a CORS refusal: the browser reports both alike (the
   * message says so).
   */
  | 'NETWORK_ERROR'
  /** The service answered with an error status (`status` and `serverCode` say which). */
  | 'HTTP_ERROR'
  /** 429 from the service; `retryAfterSeconds` says when to try again. */
  | 'RATE_LIMITED'
  /** The answer's signature does not verify with the configured public key: forged or altered. */
  | 'BAD_SIGNATURE'
  /** The signed answer echoes another nonce than the one just sent: a replayed answer. */
  | 'NONCE_MISMATCH'
  /** The answer is not the shape the contract describes. */
  | 'BAD_RESPONSE'
  /** The local clock is behind a time the service vouched for by more than the allowed skew. */
  | 'CLOCK_TAMPERED'
  /** The configured public key cannot be read, or this runtime has no WebCrypto. */
  | 'BAD_CONFIGURATION'

export class LicenseClientError extends Error {
  readonly code: LicenseClientErrorCode
  /** HTTP status, when the service answered. */
  readonly status: number | undefined
  /** The service's error code (`VALIDATION_ERROR`, `FORBIDDEN`, …), when it sent one. */
  readonly serverCode: string | undefined
  readonly retryAfterSeconds: number | undefined

  constructor (code: LicenseClientErrorCode, message: string, details: { status?: number, serverCode?: string, retryAfterSeconds?: number, cause?: unknown } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'LicenseClientError'
    this.code = code
    this.status = details.status
    this.serverCode = details.serverCode
    this.retryAfterSeconds = details.retryAfterSeconds
  }
}
