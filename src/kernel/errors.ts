// The closed set of request-stopping errors and their one mapping to HTTP status and body.
export type ErrorCode =
  | 'VALIDATION_ERROR' | 'AUTHENTICATION_ERROR' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT'
  | 'RATE_LIMITED' | 'FEATURE_DISABLED' | 'SERVICE_UNAVAILABLE' | 'INTERNAL'

export interface FieldError { field: string, message: string }

export interface ErrorBody {
  statusCode: number
  code: ErrorCode
  message: string
  errors?: FieldError[]
}

const STATUS: Record<ErrorCode, number> = {
  VALIDATION_ERROR: 400,
  AUTHENTICATION_ERROR: 401,
  FORBIDDEN: 403,
  FEATURE_DISABLED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  SERVICE_UNAVAILABLE: 503
}

/** The root of every error the API answers in the contract's format (code, status, message, field errors). */
export class ContractError extends Error {
  readonly statusCode: number
  // Named `details`, not `errors`: mercurius treats an `errors` array on an error as nested errors.
  constructor (readonly code: ErrorCode, message: string, readonly details?: FieldError[]) {
    super(message)
    this.name = new.target.name
    this.statusCode = STATUS[code]
  }

  toBody (): ErrorBody {
    return { statusCode: this.statusCode, code: this.code, message: this.message, ...(this.details ? { errors: this.details } : {}) }
  }
}

/** The contract's earlier name for ContractError (CONTRACT.md "Errors"); same class. */
export const SerialModuleError = ContractError
// eslint-disable-next-line @typescript-eslint/no-redeclare -- one name for the value and its type, as a class has
export type SerialModuleError = ContractError

export class ValidationError extends ContractError {
  constructor (message = 'Validation failed', errors?: FieldError[]) { super('VALIDATION_ERROR', message, errors) }
}
export class AuthenticationError extends ContractError {
  constructor (message = 'Authentication required') { super('AUTHENTICATION_ERROR', message) }
}
export class AuthorizationError extends ContractError {
  constructor (message = 'Not allowed') { super('FORBIDDEN', message) }
}
export class NotFoundError extends ContractError {
  constructor (message: string) { super('NOT_FOUND', message) }
}
export class ConflictError extends ContractError {
  constructor (message: string) { super('CONFLICT', message) }
}
export class RateLimitError extends ContractError {
  constructor (readonly retryAfterSeconds: number, message = 'Too many requests') { super('RATE_LIMITED', message) }
}
export class FeatureDisabledError extends ContractError {
  constructor (feature: string) { super('FEATURE_DISABLED', `feature ${feature} is disabled`) }
}

/** Seconds a client is told to wait (Retry-After) when a backend the request needs is unavailable. */
export const UNAVAILABLE_RETRY_AFTER_S = 5

/**
 * A backend the request needs (PostgreSQL) does not answer, refuses connections or cannot write:
 * 503 with Retry-After. Nothing is wrong with the request; the same request may succeed later.
 */
export class ServiceUnavailableError extends ContractError {
  constructor (message = 'Service temporarily unavailable; retry later', readonly retryAfterSeconds = UNAVAILABLE_RETRY_AFTER_S) {
    super('SERVICE_UNAVAILABLE', message)
  }
}

/**
 * Codes meaning the database is unavailable (rather than the statement or the request being at
 * fault): SQLSTATEs, postgres.js codes and socket codes, each with the reason logged.
 */
const UNAVAILABLE_CODES: Record<string, string> = {
  // PostgreSQL: connection exceptions (class 08), resources, operator intervention, system errors.
  '08000': 'connection exception',
  '08001': 'cannot establish a connection',
  '08003': 'connection does not exist',
  '08004': 'connection rejected',
  '08006': 'connection failure',
  53000: 'insufficient resources',
  53100: 'disk full',
  53200: 'out of memory',
  53300: 'too many connections',
  '57P01': 'administrator shutdown',
  '57P02': 'crash shutdown',
  '57P03': 'cannot connect now',
  '57P05': 'idle session timeout',
  57014: 'statement cancelled',
  58000: 'system error',
  58030: 'I/O error',
  25006: 'read-only transaction (a standby, or writes disabled)',
  // postgres.js
  CONNECTION_CLOSED: 'connection closed',
  CONNECT_TIMEOUT: 'connect timeout',
  // Sockets
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ECONNABORTED: 'connection aborted',
  EPIPE: 'connection broken',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  EHOSTDOWN: 'host down',
  ENETUNREACH: 'network unreachable',
  ENETDOWN: 'network down',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed'
}

/** A ServiceUnavailableError inside a wrapper (Drizzle puts what the driver threw in `cause`). */
function unavailableError (error: unknown, depth = 0): ServiceUnavailableError | undefined {
  if (error instanceof ServiceUnavailableError) return error
  if (depth > 4 || error === null || typeof error !== 'object') return undefined
  return unavailableError((error as { cause?: unknown }).cause, depth + 1)
}

/**
 * The reason a thrown error means the database is unavailable, looking through wrappers (Drizzle's
 * DrizzleQueryError `cause`, AggregateError from multi-address connects); undefined otherwise.
 * Deliberately not CONNECTION_ENDED / CONNECTION_DESTROYED: those are this process closing its pool.
 */
export function unavailableReason (error: unknown, depth = 0): string | undefined {
  if (depth > 4 || error === null || typeof error !== 'object') return undefined
  if (error instanceof ServiceUnavailableError) return error.message
  const e = error as { code?: unknown, cause?: unknown, errors?: unknown }
  if (typeof e.code === 'string' && Object.hasOwn(UNAVAILABLE_CODES, e.code)) return `${UNAVAILABLE_CODES[e.code]} (${e.code})`
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const reason = unavailableReason(inner, depth + 1)
      if (reason) return reason
    }
  }
  return unavailableReason(e.cause, depth + 1)
}

/** Turns a zod error into the contract's field list. */
export function fieldErrors (issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>, message: string }>): FieldError[] {
  return issues.map((i) => ({ field: i.path.map(String).join('.') || 'input', message: i.message }))
}

const FASTIFY_CODES: Record<string, () => ContractError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new ContractError('VALIDATION_ERROR', 'Unsupported content type; send application/json'),
  FST_ERR_CTP_BODY_TOO_LARGE: () => new ContractError('VALIDATION_ERROR', 'Request body is larger than 1 MiB'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new ValidationError('Request body is empty'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new ValidationError('Request body is not valid JSON'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new ValidationError('Content-Length does not match the body')
}

/**
 * Maps anything thrown to a contract error. Unknown errors become INTERNAL with a fixed message:
 * no stack, SQL or driver text ever reaches a client.
 */
export function toContractError (error: unknown): ContractError {
  if (error instanceof ContractError) return error
  const wrapped = unavailableError(error)
  if (wrapped) return wrapped
  if (unavailableReason(error)) return new ServiceUnavailableError()
  const e = error as { name?: string, code?: string, statusCode?: number, validation?: Array<{ instancePath?: string, message?: string, params?: { missingProperty?: string } }>, message?: string }
  if (e?.code && FASTIFY_CODES[e.code]) {
    const mapped = FASTIFY_CODES[e.code]!()
    // Fastify reports 413 / 415 for these; keep its status so HTTP semantics stay right.
    if (e.statusCode && e.statusCode !== mapped.statusCode) Object.defineProperty(mapped, 'statusCode', { value: e.statusCode })
    return mapped
  }
  if (e?.validation) {
    return new ValidationError('Validation failed', e.validation.map((v) => ({
      field: (v.params?.missingProperty ?? v.instancePath?.replace(/^\//, '').replace(/\//g, '.')) || 'body',
      message: v.message ?? 'is invalid'
    })))
  }
  if (e?.statusCode === 429) return new RateLimitError(60)
  // Mercurius reports an exceeded queryDepth with status 500; it is the caller's query at fault.
  if (e?.code === 'MER_ERR_GQL_QUERY_DEPTH' && typeof e.message === 'string') return new ValidationError(e.message)
  if (e?.name === 'GraphQLError' && typeof e.message === 'string') return new ValidationError(e.message)
  if (e?.statusCode && e.statusCode >= 400 && e.statusCode < 500 && typeof e.message === 'string') {
    return new ValidationError(e.message)
  }
  return new ContractError('INTERNAL', 'Internal server error')
}
