// CORS for the public validation calls, for the origins in CORS_ORIGINS only (none by default), so
// an app's page on its own origin can use @serials/client. What a cross-origin page may reach:
// the public REST calls under {prefix}/serials/, the public key, the revocation list, and GraphQL
// POST. Never a credential: the Authorization and X-Api-Key headers are not allowed and cookies
// are not sent, so through GraphQL only the public operations (validateSerial, heartbeat,
// recordUsage, releaseDevice, licenseStatus, issueLicenseCertificate) succeed; the rest answer
// AUTHENTICATION_ERROR as for any anonymous caller.
import cors from '@fastify/cors'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** The request headers the SDK sends; anything else (a credential above all) fails the preflight. */
const ALLOWED_HEADERS = ['Content-Type', 'Accept', 'If-None-Match']
/** What the SDK reads from an answer besides the status and body. */
const EXPOSED_HEADERS = ['ETag', 'Retry-After']

/** Whether a (preflighted) call may be answered with CORS headers. */
export function isCorsPublicCall (prefix: string, method: string | undefined, path: string): boolean {
  if (method === 'POST') return path.startsWith(`${prefix}/serials/`) || path === '/graphql'
  if (method === 'GET' || method === 'HEAD') return path === `${prefix}/public-key` || path === `${prefix}/revocations`
  return false
}

export default fp(async (app) => {
  const { corsOrigins, prefix } = app.deps.config
  if (corsOrigins.length === 0) return
  const origins = [...corsOrigins]
  await app.register(cors, {
    delegator: (request: FastifyRequest, callback) => {
      // A preflight asks about the method to come; its own method is OPTIONS.
      const requested = request.headers['access-control-request-method']
      const method = request.method === 'OPTIONS' && typeof requested === 'string' ? requested.toUpperCase() : request.method
      const path = request.url.split('?')[0] ?? ''
      if (!isCorsPublicCall(prefix, method, path)) { callback(null, { origin: false }); return }
      callback(null, {
        origin: origins, // echoed only when the request's Origin is one of them
        methods: ['GET', 'HEAD', 'POST'],
        allowedHeaders: ALLOWED_HEADERS,
        exposedHeaders: EXPOSED_HEADERS,
        credentials: false,
        maxAge: 600
      })
    }
  })
}, { name: 'cors', dependencies: ['deps'] })
