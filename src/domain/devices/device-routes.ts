// REST shim for legacy apps: POST {prefix}/serials/release, a device giving up its own slot.
import type { FastifyPluginAsync } from 'fastify'
import { publicRoute, serialDeviceBody } from './public-rest.ts'

export const deviceRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  app.post('/serials/release', { schema: { body: serialDeviceBody }, ...publicRoute }, async (request) => {
    return services.devices.releaseBySerialNumber(request.body)
  })
}
