// Resolves request.actor from an API key or a JWT. Public routes simply see ANONYMOUS.
import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import { ANONYMOUS, bearerToken, ROLES, type Actor, type Role } from './auth.ts'
import { AuthenticationError } from './errors.ts'

declare module 'fastify' {
  interface FastifyRequest { actor: Actor }
  interface FastifyContextConfig {
    /** The route checks its own credential (e.g. /metrics with METRICS_TOKEN). */
    skipAuth?: boolean
  }
  interface FastifyInstance {
    /** Actor for a bearer credential, or null when it is not valid. */
    authenticate (token: string): Promise<Actor | null>
    issueToken (actor: Actor, ttlSeconds: number): { token: string, expiresAt: Date }
  }
}

interface TokenClaims { sub: string, role: Role, cid: string | null, exp: number }

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export default fp(async (app) => {
  const { config, services } = app.deps
  await app.register(jwt, {
    secret: config.jwtSecret,
    sign: { algorithm: 'HS256' },
    verify: { algorithms: ['HS256'] }
  })

  app.decorate('authenticate', async (token: string): Promise<Actor | null> => {
    if (JWT_SHAPE.test(token) && !token.startsWith('srl_')) {
      try {
        const claims = app.jwt.verify<TokenClaims>(token)
        if (!ROLES.includes(claims.role)) return null
        return { kind: 'jwt', id: claims.sub, role: claims.role, clientId: claims.cid ?? null }
      } catch {
        return null
      }
    }
    return services.apiKeys.authenticate(token)
  })

  app.decorate('issueToken', (actor: Actor, ttlSeconds: number) => {
    const exp = Math.floor(Date.now() / 1000) + ttlSeconds
    const token = app.jwt.sign({ sub: actor.id, role: actor.role, cid: actor.clientId, exp })
    return { token, expiresAt: new Date(exp * 1000) }
  })

  app.decorateRequest('actor', null as unknown as Actor)
  app.addHook('onRequest', async (request) => {
    const token = request.routeOptions.config?.skipAuth ? undefined : bearerToken(request.headers)
    if (!token) { request.actor = ANONYMOUS; return }
    const actor = await app.authenticate(token)
    // A credential that was sent but is not valid is an error, not anonymity.
    if (!actor) throw new AuthenticationError('API key or token is not valid')
    request.actor = actor
  })
}, { name: 'auth', dependencies: ['deps'] })
