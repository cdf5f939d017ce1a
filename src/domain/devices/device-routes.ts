// REST shim for legacy apps: POST {prefix}/serials/release, a device giving up its own slot.
import type { FastifyPluginAsync } from 'fastify'
import { publicRoute, publicRouteErrors, serialDeviceBody } from './public-rest.ts'
import { errorResponses } from '../../kernel/error-schema.ts'

const deviceView = {
  description: 'The device, now without its slot (releasing a device already released answers the same).',
  type: 'object',
  required: ['id', 'serialId', 'deviceId', 'deviceInfo', 'active', 'firstSeenAt', 'lastSeenAt', 'deactivatedAt', 'validationCount', 'leaseExpiresAt'],
  properties: {
    id: { type: 'string', description: '`dev_…`' },
    serialId: { type: 'string' },
    deviceId: { type: 'string' },
    deviceInfo: { type: ['object', 'null'], additionalProperties: true, description: 'As last sent with a validation; null = none.' },
    active: { type: 'boolean', description: 'false: the slot is free.' },
    firstSeenAt: { type: 'string', format: 'date-time' },
    lastSeenAt: { type: 'string', format: 'date-time', description: 'Flushed in the background: a few seconds behind at most.' },
    deactivatedAt: { type: ['string', 'null'], format: 'date-time' },
    validationCount: { type: 'integer' },
    leaseExpiresAt: { type: ['string', 'null'], format: 'date-time', description: 'Floating policies; null = not leased.' }
  }
} as const

const releaseSchema = {
  operationId: 'releaseDevice',
  tags: ['Devices'],
  summary: "Release a device's slot",
  description: 'A device gives up its own slot; it may take one again later. The same service as GraphQL `releaseDevice`.',
  body: serialDeviceBody,
  response: {
    200: deviceView,
    ...publicRouteErrors,
    ...errorResponses([400, 404], {
      400: 'VALIDATION_ERROR: the body is malformed (not JSON, empty, too deep, wrong types, missing fields) or the serial number is not well formed.',
      404: 'NOT_FOUND: no such serial number, or the device never held a slot of it.'
    })
  }
}

export const deviceRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  app.post('/serials/release', { schema: releaseSchema, ...publicRoute }, async (request) => {
    return services.devices.releaseBySerialNumber(request.body)
  })
}
