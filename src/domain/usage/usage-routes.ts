// REST shim for legacy apps: POST {prefix}/serials/usage, the same service as GraphQL's recordUsage.
import type { FastifyPluginAsync } from 'fastify'
import { publicRoute, publicRouteErrors } from '../devices/public-rest.ts'
import { ValidationError } from '../../kernel/errors.ts'
import { errorResponses } from '../../kernel/error-schema.ts'
import { VALIDATION_CODES } from '../validation/validation-rules.ts'
import { idempotencyKeyInput } from '../../kernel/input.ts'

const usageBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64, description: 'As issued; case, spaces and dashes do not matter.' },
    deviceId: { type: 'string', minLength: 1, maxLength: 128, description: "The app's own device identifier, 1–128 printable ASCII characters." },
    quantity: { type: ['integer', 'null'], description: '1–1,000,000; default 1.' },
    feature: { type: ['string', 'null'], maxLength: 64, description: 'The metered feature, 1–64 printable ASCII characters; null = none.' }
  }
} as const

const usageEvent = {
  type: 'object',
  required: ['id', 'seq', 'serialId', 'clientId', 'deviceId', 'kind', 'quantity', 'feature', 'recordedAt'],
  properties: {
    id: { type: 'string', description: '`use_…`' },
    seq: { type: 'integer', description: 'Position in the usage stream (subscriptions resume after it).' },
    serialId: { type: 'string' },
    clientId: { type: 'string' },
    deviceId: { type: 'string' },
    kind: { type: 'string', enum: ['USAGE'] },
    quantity: { type: 'integer' },
    feature: { type: ['string', 'null'] },
    recordedAt: { type: 'string', format: 'date-time' }
  }
} as const

const usageSchema = {
  operationId: 'recordUsage',
  tags: ['Usage'],
  summary: 'Record a usage event for a device',
  description: 'Validates first (a new device takes a free slot), then stores the event before answering. The same service as GraphQL `recordUsage`. ' +
    'With an Idempotency-Key, a retry of the same request replays the first answer.',
  headers: {
    type: 'object',
    properties: {
      'Idempotency-Key': {
        type: 'string',
        description: '1–255 printable ASCII characters, checked before any work (400 with field `Idempotency-Key` otherwise); absent or empty: not idempotent. ' +
          'Kept 24 hours per serial; reusing it for a different request answers 409.'
      }
    }
  },
  body: usageBody,
  response: {
    200: {
      description: 'Not recorded: the validation failed, `code` says why (NOT_FOUND, REVOKED, EXPIRED, TOO_MANY_DEVICES, …).',
      type: 'object',
      required: ['recorded', 'code', 'usageEvent'],
      properties: {
        recorded: { type: 'boolean', enum: [false] },
        code: { type: 'string', enum: VALIDATION_CODES.filter((c) => c !== 'VALID') },
        usageEvent: { type: 'null' }
      }
    },
    201: {
      description: 'Recorded (or, with the same Idempotency-Key, the first answer replayed).',
      type: 'object',
      required: ['recorded', 'code', 'usageEvent'],
      properties: {
        recorded: { type: 'boolean', enum: [true] },
        code: { type: 'string', enum: ['VALID'] },
        usageEvent
      }
    },
    ...publicRouteErrors,
    ...errorResponses([400, 409], {
      400: 'VALIDATION_ERROR: the body is malformed (not JSON, empty, too deep, wrong types, missing or out-of-range fields) or the Idempotency-Key is not 1–255 printable ASCII characters.',
      409: 'CONFLICT: the Idempotency-Key was used for a different request, or its first request is still running.'
    })
  }
}

/** The Idempotency-Key header, checked before any work is done (a usage call activates devices). */
function idempotencyKeyOf (header: string | string[] | undefined): string | undefined {
  if (header === undefined || header === '') return undefined
  const checked = typeof header === 'string' ? idempotencyKeyInput.safeParse(header) : undefined
  if (!checked?.success) {
    const message = checked?.error.issues[0]?.message ?? 'must be sent once'
    throw new ValidationError('Validation failed', [{ field: 'Idempotency-Key', message }])
  }
  return checked.data
}

export const usageRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  app.post('/serials/usage', { schema: usageSchema, ...publicRoute }, async (request, reply) => {
    const result = await services.usage.record(request.body, { ip: request.ip, requestId: request.id }, idempotencyKeyOf(request.headers['idempotency-key']))
    // 201 when an event was stored; 200 with recorded: false and the validation code otherwise.
    return reply.status(result.recorded ? 201 : 200).send(result)
  })
}
