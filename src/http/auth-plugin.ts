// Resolves request.actor from an API key or a JWT. Public routes simply see ANONYMOUS.
// A JWT is only as good as the API key it was issued from: revoking the key ends its tokens.
import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import { ADMIN_ENV_ACTOR_ID } from '../domain/api-keys/api-key-service.ts'
import type { RevokedListener } from '../domain/api-keys/revoked-keys.ts'
import { ANONYMOUS, bearerToken, ROLES, type Actor, type Role } from '../kernel/access.ts'
import { AuthenticationError } from '../kernel/errors.ts'

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
    /**
     * Calls the listener on this instance whenever an API key is revoked on any instance, with the
     * key id (credentials whose Actor.keyId it is are no longer valid). Returns an unsubscribe.
     */
    onCredentialRevoked (listener: RevokedListener): () => void
  }
}

/** `sub` is the API key the token was issued from (or env:ADMIN_API_KEY); `exp`/`iat` in epoch seconds. */
interface TokenClaims { sub: string, role: Role, cid: string | null, exp?: unknown, iat?: unknown }

/** The longest lifetime a token may be issued with, in seconds (issueToken's ttlSeconds bound). */
export const MAX_TOKEN_TTL_S = 86_400
/** Clock difference between instances tolerated on `exp`, in seconds. */
const CLOCK_SKEW_S = 60

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

export default fp(async (app) => {
  const { config, services } = app.deps
  await app.register(jwt, {
    secret: config.jwtSecret,
    sign: { algorithm: 'HS256' },
    verify: { algorithms: ['HS256'] }
  })

  const revokedKeys = services.apiKeys.revokedKeys
  await revokedKeys.start()
  app.addHook('onClose', () => revokedKeys.stop())
  app.decorate('onCredentialRevoked', (listener: RevokedListener) => revokedKeys.onRevoked(listener))

  /** The claims of a token this service would have issued, or null. */
  function verifyToken (token: string): TokenClaims & { exp: number } | null {
    let claims: TokenClaims
    try {
      claims = app.jwt.verify<TokenClaims>(token)
    } catch {
      return null
    }
    if (!ROLES.includes(claims.role) || typeof claims.sub !== 'string') return null
    // A token without exp would never expire; one whose lifetime exceeds what issueToken grants
    // was not issued by it (measured from iat when present, and from now in any case).
    const { exp, iat } = claims
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return null
    if (typeof iat === 'number' && exp - iat > MAX_TOKEN_TTL_S) return null
    if (exp > Date.now() / 1000 + MAX_TOKEN_TTL_S + CLOCK_SKEW_S) return null
    return { ...claims, exp }
  }

  app.decorate('authenticate', async (token: string): Promise<Actor | null> => {
    if (JWT_SHAPE.test(token) && !token.startsWith('srl_')) {
      const claims = verifyToken(token)
      if (!claims) return null
      const keyId = claims.sub === ADMIN_ENV_ACTOR_ID ? null : claims.sub
      // Tokens from the env ADMIN_API_KEY cannot be revoked one by one: they live until exp.
      if (keyId !== null && !await services.apiKeys.isActive(keyId)) return null
      return { kind: 'jwt', id: claims.sub, role: claims.role, clientId: claims.cid ?? null, keyId, expiresAt: claims.exp * 1000 }
    }
    return services.apiKeys.authenticate(token)
  })

  app.decorate('issueToken', (actor: Actor, ttlSeconds: number) => {
    let exp = Math.floor(Date.now() / 1000) + Math.min(ttlSeconds, MAX_TOKEN_TTL_S)
    // A token never outlives the key it is issued from.
    if (actor.expiresAt !== null) exp = Math.min(exp, Math.floor(actor.expiresAt / 1000))
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
