// buildApp(config): the whole service as a Fastify instance. The server and the tests call this.
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import websocket from '@fastify/websocket'
import type { Config } from '../config/config.ts'
import graphqlPlugin from '../http/graphql/graphql-plugin.ts'
import { schema } from './schema.ts'
import graphiqlRoutes from '../http/graphiql-routes.ts'
import authPlugin from '../http/auth-plugin.ts'
import depsPlugin from './deps-plugin.ts'
import errorsPlugin, { clientErrorHandler } from '../http/errors-plugin.ts'
import { RateLimitError, ValidationError } from '../kernel/errors.ts'
import { healthRoutes } from '../http/health-routes.ts'
import { metricsRoutes } from '../http/metrics-routes.ts'
import rateLimits, { createWindowCounter, windowStore } from '../http/rate-limit.ts'
import { logIds, nameRequestSpan, tracedServerFactory, tracingEnabled } from '../infra/tracing.ts'
import { validationRoutes } from '../domain/validation/validation-routes.ts'
import { usageRoutes } from '../domain/usage/usage-routes.ts'
import { deviceRoutes } from '../domain/devices/device-routes.ts'
import { certificateRoutes } from '../domain/certificates/certificate-routes.ts'
import { revocationListRoutes } from '../domain/revocation-list/revocation-list-routes.ts'
import webRoutes from '../http/web-routes.ts'
import corsPlugin from '../http/cors.ts'
import openapiPlugin, { openapiRoutes } from '../http/openapi-routes.ts'
import { MAX_JSON_DEPTH, jsonTooDeep } from '../kernel/input.ts'

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
    // Start-up (migrations, key checks) on a loaded machine can outlast Fastify's 10 s default.
    pluginTimeout: 60_000,
    // Timeouts, oversized headers and malformed requests answered by Node's parser: contract JSON too.
    clientErrorHandler,
    // A URL the router cannot decode (`%ff`, a lone `%`) is bad input in the contract's format.
    frameworkErrors: (error, _request, reply) => {
      const body = new ValidationError(error.code === 'FST_ERR_BAD_URL' ? 'Malformed URL' : 'Malformed request').toBody()
      void (reply as FastifyReply).code(400).send(body)
    },
    ...(tracingEnabled() ? { serverFactory: tracedServerFactory } : {})
  })
  if (tracingEnabled()) app.addHook('onRequest', async (request) => nameRequestSpan(request.method, request.routeOptions.url))

  // Set on the server itself (a serverFactory ignores Fastify's options): a client that trickles
  // its headers or stalls its body gets 408 after these bounds, checked every second rather than
  // Node's default 30 s. Idle keep-alive sockets are closed by keepAliveTimeout as before.
  const server = app.server as typeof app.server & { connectionsCheckingInterval?: number }
  server.headersTimeout = config.headersTimeout * 1000
  server.requestTimeout = config.requestTimeout * 1000
  server.connectionsCheckingInterval = 1000

  // Accept a caller's request id only when it is safe to log and echo.
  app.addHook('onRequest', async (request, reply) => {
    const incoming = request.headers['x-request-id']
    if (typeof incoming === 'string' && !REQUEST_ID.test(incoming)) request.id = randomUUID()
    void reply.header('x-request-id', request.id)
  })

  // JSON only: any other content type answers 415 in the contract format.
  app.removeContentTypeParser('text/plain')
  // Fastify's own JSON parser (prototype-poisoning checks kept) behind a nesting bound, checked on
  // the text before parsing: a 5,000-level body never reaches a recursive walk (or PostgreSQL).
  const parseJson = app.getDefaultJsonParser('error', 'ignore')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8')
    if (jsonTooDeep(text)) {
      done(new ValidationError(`Request body nests deeper than ${MAX_JSON_DEPTH} levels`), undefined)
      return
    }
    parseJson(request, text, done)
  })
  await app.register(errorsPlugin)
  await app.register(depsPlugin, { config, background: options.background ?? true })
  // Before every route: @fastify/swagger collects them (and their schemas) as they are added.
  await app.register(openapiPlugin)
  // Before every other route, so the request-duration hook sees them all.
  await app.register(metricsRoutes)
  // CORS_ORIGINS: before the rate limits, so a 429 carries CORS headers and the SDK reads it as one.
  await app.register(corsPlugin)
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
  await app.register(graphqlPlugin, { schema })
  await app.register(graphiqlRoutes)
  await app.register(rateLimits)
  await app.register(healthRoutes)
  // The REST shim for legacy apps, one plugin per feature, all under API_PREFIX.
  for (const routes of [validationRoutes, usageRoutes, deviceRoutes, certificateRoutes]) await app.register(routes, { prefix: config.prefix })
  await app.register(revocationListRoutes, { prefix: config.prefix })
  await app.register(openapiRoutes, { prefix: config.prefix })
  await app.register(webRoutes, { apiPrefix: config.prefix })
  return app
}
