// REST shim for legacy apps: the same services as GraphQL, under API_PREFIX.
import type { FastifyPluginAsync } from 'fastify'
import { ValidationError } from '../../kernel/errors.ts'
import { idempotencyKeyInput } from '../../kernel/input.ts'
import { heartbeatRoutes } from '../validation/heartbeat-routes.ts'
import { VALIDATION_CODES } from './serial-rules.ts'
import { serialDeviceBody } from './serial-device-body.ts'

const validateBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64 },
    deviceId: { type: 'string', minLength: 1, maxLength: 128 },
    deviceInfo: { type: ['object', 'null'] },
    nonce: { type: ['string', 'null'], maxLength: 128 }
  }
} as const

const validateResponse = {
  200: {
    type: 'object',
    required: ['valid', 'code', 'message', 'serverTime'],
    properties: {
      valid: { type: 'boolean' },
      code: { type: 'string', enum: [...VALIDATION_CODES] },
      message: { type: 'string' },
      expiresAt: { type: ['string', 'null'], format: 'date-time' },
      remainingDevices: { type: ['integer', 'null'] },
      isDemo: { type: ['boolean', 'null'] },
      serverTime: { type: 'string', format: 'date-time' },
      nonce: { type: 'string' },
      signature: { type: 'string' },
      entitlements: { type: 'array', items: { type: 'string' } },
      leaseExpiresAt: { type: ['string', 'null'], format: 'date-time' }
    }
  }
} as const

const usageBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64 },
    deviceId: { type: 'string', minLength: 1, maxLength: 128 },
    quantity: { type: ['integer', 'null'] },
    feature: { type: ['string', 'null'], maxLength: 64 }
  }
} as const

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

export const serialRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  // The public routes are JSON for apps, not pages for browsers: no helmet headers. Their rate
  // limit is the per-IP VALIDATE_RATE_LIMIT budget of platform/rate-limit.ts (shared with the
  // public GraphQL mutations), not a second @fastify/rate-limit counter.
  const publicRoute = { helmet: false as const, config: { rateLimit: false as const } }

  app.post('/serials/validate', { schema: { body: validateBody, response: validateResponse }, ...publicRoute }, async (request) => {
    const { result } = await services.serials.validate(request.body)
    // Absent rather than null: legacy clients check for the keys' presence.
    const { nonce, signature, ...rest } = result
    return { ...rest, ...(nonce ? { nonce } : {}), ...(signature ? { signature } : {}) }
  })

  app.post('/serials/usage', { schema: { body: usageBody }, ...publicRoute }, async (request, reply) => {
    const result = await services.usage.record(request.body, { ip: request.ip, requestId: request.id }, idempotencyKeyOf(request.headers['idempotency-key']))
    // 201 when an event was stored; 200 with recorded: false and the validation code otherwise.
    return reply.status(result.recorded ? 201 : 200).send(result)
  })

  app.post('/serials/release', { schema: { body: serialDeviceBody }, ...publicRoute }, async (request) => {
    return services.devices.releaseBySerialNumber(request.body)
  })

  app.get('/public-key', async () => services.certificates.publicKey())
  await app.register(heartbeatRoutes)
}
