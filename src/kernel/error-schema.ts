// The contract's error body as a JSON schema, shared by every REST route's `schema.response` (domain
// and http alike) and published once in the OpenAPI description as components.schemas.ErrorBody.
// Route schemas name it by `$ref: 'ErrorBody#'`; http/openapi-routes.ts registers it (addSchema).
import type { ErrorCode } from './errors.ts'

export const ERROR_BODY_ID = 'ErrorBody'

const CODES = ['VALIDATION_ERROR', 'AUTHENTICATION_ERROR', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'RATE_LIMITED', 'FEATURE_DISABLED', 'SERVICE_UNAVAILABLE', 'INTERNAL'] as const satisfies readonly ErrorCode[]
// Fails to compile when errors.ts gains a code this list (and so the description) lacks.
const everyCode: [Exclude<ErrorCode, typeof CODES[number]>] extends [never] ? true : never = true
void everyCode

export const errorBodySchema = {
  $id: ERROR_BODY_ID,
  type: 'object',
  description: 'Every REST error: the HTTP status again, a closed code, a message naming the object, and field errors for bad input.',
  required: ['statusCode', 'code', 'message'],
  additionalProperties: false,
  properties: {
    statusCode: { type: 'integer', minimum: 400, maximum: 599, description: 'The HTTP status of the answer.' },
    code: { type: 'string', enum: [...CODES] },
    message: { type: 'string', description: 'For people; never a stack trace or SQL. Match on `code`, not on this.' },
    errors: {
      type: 'array',
      description: 'VALIDATION_ERROR only: one entry per refused field.',
      items: {
        type: 'object',
        required: ['field', 'message'],
        additionalProperties: false,
        properties: {
          field: { type: 'string', description: 'Dotted path in the body (`deviceInfo.os`), a header name, or `body`.' },
          message: { type: 'string' }
        }
      }
    }
  }
} as const

/**
 * Registers ErrorBody on a Fastify instance unless it already has it: the OpenAPI plugin does it
 * for the whole app, and a route plugin registered on its own (a test) does it for itself.
 */
export function ensureErrorBodySchema (app: { getSchemas (): Record<string, unknown>, addSchema (schema: unknown): unknown }): void {
  if (!(ERROR_BODY_ID in app.getSchemas())) app.addSchema(errorBodySchema)
}

/** The error statuses the REST routes answer with the contract's body. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 500 | 503

/** Which code an error status carries (CONTRACT.md "Errors"); tests check answers against it. */
export const ERROR_STATUS_CODES: Record<ErrorStatus, readonly ErrorCode[]> = {
  400: ['VALIDATION_ERROR'],
  401: ['AUTHENTICATION_ERROR'],
  403: ['FORBIDDEN', 'FEATURE_DISABLED'],
  404: ['NOT_FOUND'],
  409: ['CONFLICT'],
  413: ['VALIDATION_ERROR'],
  415: ['VALIDATION_ERROR'],
  429: ['RATE_LIMITED'],
  500: ['INTERNAL'],
  503: ['SERVICE_UNAVAILABLE', 'INTERNAL']
}

const DESCRIPTIONS: Record<ErrorStatus, string> = {
  400: 'VALIDATION_ERROR: the request is malformed (not JSON, empty, nested deeper than 32 levels, wrong types, missing or out-of-range fields).',
  401: 'AUTHENTICATION_ERROR: an Authorization (or x-api-key) credential was sent but is not valid. Omit it on public routes.',
  403: 'FORBIDDEN or FEATURE_DISABLED.',
  404: 'NOT_FOUND.',
  409: 'CONFLICT.',
  413: 'VALIDATION_ERROR: the request body is larger than 1 MiB.',
  415: 'VALIDATION_ERROR: the content type is not application/json.',
  429: 'RATE_LIMITED: a per-IP, per-client or failed-lookup limit was reached; retry after Retry-After seconds.',
  500: 'INTERNAL: an unexpected failure (no details are given).',
  503: 'SERVICE_UNAVAILABLE: a backend the request needs (PostgreSQL) does not answer; retry after Retry-After seconds.'
}

const jsonError = { 'application/json': { schema: { $ref: `${ERROR_BODY_ID}#` } } }

const RETRY_AFTER: Partial<Record<ErrorStatus, object>> = {
  // `required` here is the OpenAPI header's, lifted there by http/openapi-routes.ts.
  429: { 'Retry-After': { type: 'integer', minimum: 1, description: 'Seconds until the limit resets.', required: true } },
  503: { 'Retry-After': { type: 'integer', minimum: 1, description: 'Seconds to wait; sent with SERVICE_UNAVAILABLE.' } }
}

/**
 * A `schema.response` entry for one error status, in Fastify's `content` form (which
 * @fastify/swagger publishes as is). 429 and 503 also describe Retry-After.
 */
export function errorResponse (status: ErrorStatus, description = DESCRIPTIONS[status]) {
  const headers = RETRY_AFTER[status]
  return { description, ...(headers ? { headers } : {}), content: jsonError }
}

/** `schema.response` entries for several error statuses; `descriptions` overrides the defaults. */
export function errorResponses (statuses: readonly ErrorStatus[], descriptions: Partial<Record<ErrorStatus, string>> = {}) {
  return Object.fromEntries(statuses.map((s) => [s, errorResponse(s, descriptions[s])])) as Partial<Record<ErrorStatus, ReturnType<typeof errorResponse>>>
}

/**
 * What any route can answer whatever it does: an invalid credential sent (the auth hook runs
 * everywhere), a limit reached (the per-client quota applies to every authenticated call), a fault,
 * the database unavailable (a credential sent is checked there, even on a route that needs none).
 */
export const ANY_ROUTE_ERRORS: readonly ErrorStatus[] = [401, 429, 500, 503]

/** What a route with a JSON body adds: the body refused before the handler. */
export const JSON_BODY_ERRORS: readonly ErrorStatus[] = [400, 413, 415]
