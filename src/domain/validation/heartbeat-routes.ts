// REST heartbeat for apps on floating policies: POST {prefix}/serials/heartbeat. Public like
// validation (the serial number is the credential), under the same per-IP budget (rate-limit.ts).
import type { FastifyPluginAsync } from 'fastify'
import { VALIDATION_CODES } from '../serials/serial-rules.ts'
import { serialDeviceBody } from '../serials/serial-device-body.ts'

const heartbeatResponse = {
  200: {
    type: 'object',
    required: ['alive', 'code', 'leaseExpiresAt'],
    properties: {
      alive: { type: 'boolean' },
      code: { type: 'string', enum: [...VALIDATION_CODES] },
      leaseExpiresAt: { type: ['string', 'null'], format: 'date-time' }
    }
  }
} as const

export const heartbeatRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  const publicRoute = { helmet: false as const, config: { rateLimit: false as const } }
  app.post('/serials/heartbeat', { schema: { body: serialDeviceBody, response: heartbeatResponse }, ...publicRoute }, async (request) =>
    services.validation.heartbeat(request.body))
}
