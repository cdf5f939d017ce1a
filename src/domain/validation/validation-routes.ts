// The hot path's REST entry points for legacy apps (validate, heartbeat), under API_PREFIX: the
// same service as GraphQL's validateSerial and heartbeat. Public: the serial number is the credential.
import type { FastifyPluginAsync } from 'fastify'
import { VALIDATION_CODES } from './validation-rules.ts'
import { publicRoute, publicRouteErrors, serialDeviceBody } from '../devices/public-rest.ts'

const validateBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64, description: 'As issued; case, spaces and dashes do not matter.' },
    deviceId: { type: 'string', minLength: 1, maxLength: 128, description: "The app's own device identifier, 1–128 printable ASCII characters." },
    deviceInfo: { type: ['object', 'null'], description: 'Free-form JSON about the device, at most 2 KiB; stored encrypted.' },
    nonce: { type: ['string', 'null'], maxLength: 128, description: 'Your own random string: the answer then carries it and a signature over the answer (README "Checking a signed answer").' }
  }
} as const

const validateResponse = {
  200: {
    description: 'The outcome, for every serial that was looked up: `valid: false` with its code (NOT_FOUND, REVOKED, EXPIRED, …) is an answer, not an error.',
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
    description: 'Whether the device holds a slot (`alive`), with the validation code and, on floating policies, the renewed lease.',
    type: 'object',
    required: ['alive', 'code', 'leaseExpiresAt'],
    properties: {
      alive: { type: 'boolean' },
      code: { type: 'string', enum: [...VALIDATION_CODES] },
      leaseExpiresAt: { type: ['string', 'null'], format: 'date-time' }
    }
  }
} as const

const validateSchema = {
  operationId: 'validateSerial',
  tags: ['Validation'],
  summary: 'Validate a serial number for a device',
  description: 'A device not yet holding a slot takes one when the serial has a free one. The same service as GraphQL `validateSerial`. ' +
    'Public: the serial number is the credential.',
  body: validateBody,
  response: { ...validateResponse, ...publicRouteErrors }
}

const heartbeatSchema = {
  operationId: 'heartbeat',
  tags: ['Validation'],
  summary: "Renew a device's lease",
  description: 'The validation path without its extras (nonce, device info): renews a floating lease; a device without a slot (culled, released, new) ' +
    'takes a free one if there is one, else answers `alive: false` with the code. The same service as GraphQL `heartbeat`.',
  body: serialDeviceBody,
  response: { ...heartbeatResponse, ...publicRouteErrors }
}

export const validationRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps

  app.post('/serials/validate', { schema: validateSchema, ...publicRoute }, async (request) => {
    const { result } = await services.validation.validate(request.body)
    // Absent rather than null: legacy clients check for the keys' presence.
    const { nonce, signature, ...rest } = result
    return { ...rest, ...(nonce ? { nonce } : {}), ...(signature ? { signature } : {}) }
  })

  app.post('/serials/heartbeat', { schema: heartbeatSchema, ...publicRoute }, async (request) =>
    services.validation.heartbeat(request.body))
}
