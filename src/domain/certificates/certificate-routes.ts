// GET {prefix}/public-key: the keys an app pins to verify certificates and signed answers.
import type { FastifyPluginAsync } from 'fastify'

export const certificateRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  app.get('/public-key', async () => services.certificates.publicKey())
}
