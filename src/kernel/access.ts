// Who is calling: resolved once per request from `Authorization: Bearer …` or `x-api-key`.
import { AuthorizationError } from './errors.ts'

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

// Tenant scope and role guards: every rule once. Another client's object is answered as
// NOT_FOUND by callers (no existence oracle); a role that may not act gets FORBIDDEN.

/** The roles that change serials, devices and webhooks; an AUDITOR only reads. */
export const WRITERS: readonly Role[] = ['ADMIN', 'MANAGER']

/**
 * A client id no row has: the scope of a MANAGER without a client and of a role-less actor, so a
 * list filtered by it shows nothing (and a topic named by it is never published to).
 */
export const NO_CLIENT = '_none'

/** Whether the actor holds one of these roles; an anonymous actor holds none. */
export function hasRole (actor: Actor, roles: readonly Role[]): boolean {
  return actor.role !== null && roles.includes(actor.role)
}

/**
 * The one client whose objects the actor may see: null = every client (ADMIN, AUDITOR), a
 * MANAGER's own client, NO_CLIENT for anyone else (nothing).
 */
export function clientScope (actor: Actor): string | null {
  if (actor.role === 'ADMIN' || actor.role === 'AUDITOR') return null
  return (actor.role === 'MANAGER' ? actor.clientId : null) ?? NO_CLIENT
}

/** Can this actor see objects of this client? */
export function canSeeClient (actor: Actor, clientId: string): boolean {
  const scope = clientScope(actor)
  return scope === null || (scope !== NO_CLIENT && scope === clientId)
}

/** As canSeeClient; null = a vendor-wide object (every client's), seen only by actors scoped to every client. */
export function canSeeClientOf (actor: Actor, clientId: string | null): boolean {
  return clientId === null ? clientScope(actor) === null : canSeeClient(actor, clientId)
}

/** FORBIDDEN unless the actor holds one of `roles`: "only ADMIN and AUDITOR may <what>". */
export function requireRole (actor: Actor, roles: readonly Role[], what: string): void {
  if (!hasRole(actor, roles)) throw new AuthorizationError(`only ${roles.join(' and ')} may ${what}`)
}

/** FORBIDDEN unless the actor is one of the WRITERS: "this role may not <what>". */
export function requireWriter (actor: Actor, what: string): void {
  if (!hasRole(actor, WRITERS)) throw new AuthorizationError(`this role may not ${what}`)
}
