import fp from 'fastify-plugin'
import { safeEqual } from '../infra/crypto.ts'
import { AuthenticationError } from '../kernel/errors.ts'
import { bearerToken } from '../kernel/access.ts'
import { errorResponses } from '../kernel/error-schema.ts'

const metricsSchema = {
  operationId: 'metrics',
  tags: ['Operations'],
  summary: 'Prometheus metrics',
  description: 'Prometheus text exposition format. With METRICS_TOKEN set, send it as a bearer token; API keys are not read here. Not rate-limited.',
  security: [{ metricsToken: [] }, {}] as Array<Record<string, string[]>>,
  response: {
    200: { description: 'The metrics.', content: { 'text/plain': { schema: { type: 'string' } } } },
    ...errorResponses([401, 500], { 401: 'AUTHENTICATION_ERROR: METRICS_TOKEN is set and the bearer token is missing or wrong.' })
  }
}

// fastify-plugin: the timing hook must see every route, not only the ones in this plugin.
export const metricsRoutes = fp(async (app) => {
  const { metrics, config } = app.deps

  app.addHook('onResponse', async (request, reply) => {
    // Route template, not the raw URL, so label cardinality stays bounded.
    const route = request.routeOptions.url ?? 'unmatched'
    metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
  })

  app.get('/metrics', { schema: metricsSchema, config: { rateLimit: false, skipAuth: true } }, async (request, reply) => {
    if (config.metricsToken) {
      const token = bearerToken(request.headers)
      if (!token || !safeEqual(token, config.metricsToken)) throw new AuthenticationError('metrics token required')
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}, { name: 'metrics-routes', dependencies: ['deps'] })
