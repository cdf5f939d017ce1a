// Who is calling: resolved once per request from `Authorization: Bearer …` or `x-api-key`.
export type Role = 'ADMIN' | 'MANAGER' | 'AUDITOR'
export const ROLES: readonly Role[] = ['ADMIN', 'MANAGER', 'AUDITOR']

export interface Actor {
  kind: 'apiKey' | 'jwt' | 'anonymous'
  /** API key id, `env:ADMIN_API_KEY`, or `anonymous`. */
  id: string
  role: Role | null
  /** The one client a MANAGER sees; null = all clients (ADMIN, AUDITOR) or anonymous. */
  clientId: string | null
  /**
   * The API key the credential stems from: the key itself, or the key a JWT was issued from.
   * null = the env ADMIN_API_KEY, an internal actor, or anonymous.
   */
  keyId: string | null
  /** When the credential stops being valid, in epoch milliseconds (JWT `exp`, the key's expiresAt); null = no expiry. */
  expiresAt: number | null
}

export const ANONYMOUS: Actor = Object.freeze({ kind: 'anonymous', id: 'anonymous', role: null, clientId: null, keyId: null, expiresAt: null })

/** Request facts the audit log and rate limits need, carried next to the actor. */
export interface RequestMeta { ip: string, requestId: string }

export function bearerToken (headers: Record<string, string | string[] | undefined>): string | undefined {
  const apiKey = headers['x-api-key']
  if (typeof apiKey === 'string' && apiKey.length > 0) return apiKey.trim()
  const auth = headers.authorization
  if (typeof auth !== 'string') return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(auth)
  return match?.[1]
}

/** Can this actor see objects of this client? Answered as NOT_FOUND by callers, never FORBIDDEN. */
export function canSeeClient (actor: Actor, clientId: string): boolean {
  if (actor.role === 'ADMIN' || actor.role === 'AUDITOR') return true
  return actor.role === 'MANAGER' && actor.clientId === clientId
}
