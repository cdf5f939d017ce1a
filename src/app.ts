// buildApp(config): the whole service as a Fastify instance. The server and the tests call this.
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import websocket from '@fastify/websocket'
import type { Config } from './config.ts'
import graphqlPlugin from './graphql/graphql-plugin.ts'
import authPlugin from './platform/auth-plugin.ts'
import depsPlugin from './platform/deps-plugin.ts'
import errorsPlugin from './platform/errors-plugin.ts'
import { RateLimitError } from './platform/errors.ts'
import { healthRoutes } from './platform/health-routes.ts'
import { metricsRoutes } from './platform/metrics-routes.ts'
import rateLimits, { createWindowCounter, windowStore } from './platform/rate-limit.ts'
import { logIds, nameRequestSpan, tracedServerFactory, tracingEnabled } from './platform/tracing.ts'
import { serialRoutes } from './serials/serial-routes.ts'

export const BODY_LIMIT = 1024 * 1024
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export interface BuildOptions {
  /** Background workers (outbox relay, stats flusher, gauges); tests may turn them off. */
  background?: boolean
  logger?: boolean
}

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger === false
      ? false
      : {
          level: config.logLevel,
          // trace_id and span_id on every line logged inside a traced request.
          ...(tracingEnabled() ? { mixin: logIds } : {}),
          // Never log credentials; serial numbers travel in bodies, which are not logged.
          redact: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie']
        },
    bodyLimit: BODY_LIMIT,
    trustProxy: config.trustProxy,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    // Wrong JSON types are errors, not silently coerced ("42" for 42, ["x"] for "x").
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    forceCloseConnections: 'idle',
    ...(tracingEnabled() ? { serverFactory: tracedServerFactory } : {})
  })
  if (tracingEnabled()) app.addHook('onRequest', async (request) => nameRequestSpan(request.method, request.routeOptions.url))

  // Accept a caller's request id only when it is safe to log and echo.
  app.addHook('onRequest', async (request, reply) => {
    const incoming = request.headers['x-request-id']
    if (typeof incoming === 'string' && !REQUEST_ID.test(incoming)) request.id = randomUUID()
    void reply.header('x-request-id', request.id)
  })

  // JSON only: any other content type answers 415 in the contract format.
  app.removeContentTypeParser('text/plain')
  await app.register(errorsPlugin)
  await app.register(depsPlugin, { config, background: options.background ?? true })
  // Before every other route, so the request-duration hook sees them all.
  await app.register(metricsRoutes)
  // helmet's headers guard pages in browsers; the JSON API routes (GraphQL POST and the public REST
  // shim) opt out, which is a measurable share of the hot path. GraphiQL and the rest keep them.
  app.addHook('onRoute', (route) => {
    if (route.url === '/graphql' && route.method === 'POST' && route.helmet === undefined) route.helmet = false
  })
  await app.register(helmet, { contentSecurityPolicy: config.graphiql ? false : undefined, global: true })
  const globalCounter = createWindowCounter(app.deps.cache.redis, `${config.redis?.prefix ?? 'serials'}:rl:`)
  app.addHook('onClose', async () => globalCounter.close())
  await app.register(rateLimit, {
    global: true,
    max: config.rateLimit,
    timeWindow: 60_000,
    store: windowStore(globalCounter),
    // light-my-request and websocket upgrades may carry no ip.
    keyGenerator: (request) => request.ip ?? 'inject',
    errorResponseBuilder: (_request, context) => {
      const error = new RateLimitError(Math.ceil(context.ttl / 1000), `Rate limit exceeded: ${context.max} requests per minute`)
      return Object.assign(error, { statusCode: 429 })
    }
  })
  await app.register(websocket)
  await app.register(authPlugin)
  await app.register(graphqlPlugin)
  await app.register(rateLimits)
  await app.register(healthRoutes)
  await app.register(serialRoutes, { prefix: config.prefix })
  return app
}
