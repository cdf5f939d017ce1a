// The hot path's REST entry points for legacy apps (validate, heartbeat), under API_PREFIX: the
// same service as GraphQL's validateSerial and heartbeat. Public: the serial number is the credential.
import type { FastifyPluginAsync } from 'fastify'
import { VALIDATION_CODES } from './validation-rules.ts'
import { publicRoute, serialDeviceBody } from '../devices/public-rest.ts'

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

export const validationRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps

  app.post('/serials/validate', { schema: { body: validateBody, response: validateResponse }, ...publicRoute }, async (request) => {
    const { result } = await services.validation.validate(request.body)
    // Absent rather than null: legacy clients check for the keys' presence.
    const { nonce, signature, ...rest } = result
    return { ...rest, ...(nonce ? { nonce } : {}), ...(signature ? { signature } : {}) }
  })

  app.post('/serials/heartbeat', { schema: { body: serialDeviceBody, response: heartbeatResponse }, ...publicRoute }, async (request) =>
    services.validation.heartbeat(request.body))
}
