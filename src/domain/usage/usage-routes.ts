// REST shim for legacy apps: POST {prefix}/serials/usage, the same service as GraphQL's recordUsage.
import type { FastifyPluginAsync } from 'fastify'
import { publicRoute } from '../devices/public-rest.ts'
import { ValidationError } from '../../kernel/errors.ts'
import { idempotencyKeyInput } from '../../kernel/input.ts'

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

export const usageRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  app.post('/serials/usage', { schema: { body: usageBody }, ...publicRoute }, async (request, reply) => {
    const result = await services.usage.record(request.body, { ip: request.ip, requestId: request.id }, idempotencyKeyOf(request.headers['idempotency-key']))
    // 201 when an event was stored; 200 with recorded: false and the validation code otherwise.
    return reply.status(result.recorded ? 201 : 200).send(result)
  })
}
