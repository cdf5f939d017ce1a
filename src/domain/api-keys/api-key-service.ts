// API keys: `srl_<keyId>_<secret>` with 256 random bits, shown once; stored as an HMAC hash.
import { randomBytes } from 'node:crypto'
import { and, asc, eq, inArray, isNull } from 'drizzle-orm'
import { z } from 'zod'
import { apiKeys, clients } from '../../../schema/index.ts'
import { appendAudit } from '../audit/audit-log.ts'
import { canSeeClientOf, clientScope, requireRole, ROLES, type Actor, type RequestMeta, type Role } from '../../kernel/access.ts'
import { defineNamespace, readThrough } from '../../infra/cache.ts'
import { lookupHash, safeEqual } from '../../infra/crypto.ts'
import type { Deps } from '../deps.ts'
import { NotFoundError, ValidationError } from '../../kernel/errors.ts'
import { newId } from '../../kernel/ids.ts'
import { dateInput, parseInput } from '../../kernel/input.ts'
import { createRevokedKeySet } from './revoked-keys.ts'

export type ApiKeyRow = typeof apiKeys.$inferSelect
export type ApiKeyView = Omit<ApiKeyRow, 'secretHash'>

export const ADMIN_ENV_ACTOR_ID = 'env:ADMIN_API_KEY'
const TOKEN_PATTERN = /^srl_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/
/** An authenticated key, by the HMAC of its secret; revocation invalidates it at once. */
interface AuthEntry { id: string, role: Role, clientId: string | null, expiresAt: number | null, hash: string }
/** `k:<secretHash>`, remembered 60 s. */
const authCache = defineNamespace<AuthEntry, [secretHash: string]>('k', 60, (secretHash) => secretHash)
/** `ks:<keyId>`: whether a key is still active, for JWT checks while the revoked-key set cannot answer; 60 s. */
const keyStateCache = defineNamespace<{ active: boolean }, [keyId: string]>('ks', 60, (keyId) => keyId)

const createInput = z.object({
  name: z.string().trim().min(1).max(100),
  role: z.enum(ROLES as [Role, ...Role[]]),
  clientId: z.string().min(1).max(64).optional().nullable(),
  expiresAt: dateInput.optional().nullable()
})
const idInput = z.object({ id: z.string().min(1).max(64) })

export function createApiKeyService (deps: Deps) {
  const { database, config, cache, bus, clock, log } = deps
  const db = database.db
  const revokedKeys = createRevokedKeySet({ db, bus, onError: (error) => log.warn({ err: error }, 'revoked API keys reload failed') })
  const adminHash = config.adminApiKey ? lookupHash(config.pepper, config.adminApiKey) : undefined
  const view = ({ secretHash: _hash, ...rest }: ApiKeyRow): ApiKeyView => rest
  const lastUsed = new Map<string, Date>()

  return {
    view,
    revokedKeys,

    /** Creates a key; the secret is returned here and never again. */
    async create (actor: Actor | null, meta: RequestMeta | undefined, input: unknown): Promise<{ apiKey: ApiKeyView, secret: string }> {
      const data = parseInput(createInput, input)
      if (actor) requireRole(actor, ['ADMIN'], 'create API keys')
      if (data.role === 'MANAGER' && !data.clientId) throw new ValidationError('Validation failed', [{ field: 'clientId', message: 'is required for a MANAGER key' }])
      if (data.role !== 'MANAGER' && data.clientId) throw new ValidationError('Validation failed', [{ field: 'clientId', message: 'only MANAGER keys belong to one client' }])
      if (data.expiresAt && data.expiresAt.getTime() <= clock().getTime()) throw new ValidationError('Validation failed', [{ field: 'expiresAt', message: 'must be in the future' }])
      const id = newId('key')
      const secret = `srl_${id.slice(4)}_${randomBytes(32).toString('base64url')}`
      const system: Actor = actor ?? { kind: 'apiKey', id: 'system', role: 'ADMIN', clientId: null, keyId: null, expiresAt: null }
      const row = await db.transaction(async (tx) => {
        if (data.clientId) {
          const [client] = await tx.select({ id: clients.id }).from(clients).where(eq(clients.id, data.clientId)).limit(1)
          if (!client) throw new NotFoundError(`client ${data.clientId} not found`)
        }
        const [inserted] = await tx.insert(apiKeys).values({
          id,
          name: data.name,
          role: data.role,
          clientId: data.clientId ?? null,
          secretHash: lookupHash(config.pepper, secret),
          prefix: secret.slice(0, 12),
          expiresAt: data.expiresAt ?? null,
          createdBy: system.id
        }).returning()
        await appendAudit(tx, system, meta, [{ action: 'api_key.created', targetType: 'api_key', targetId: id, clientId: data.clientId ?? null, changes: { name: data.name, role: data.role } }])
        return inserted!
      })
      return { apiKey: view(row), secret }
    },

    async revoke (actor: Actor, meta: RequestMeta | undefined, input: unknown): Promise<ApiKeyView> {
      const { id } = parseInput(idInput, input)
      requireRole(actor, ['ADMIN'], 'revoke API keys')
      let newlyRevoked = false
      const row = await db.transaction(async (tx) => {
        const [updated] = await tx.update(apiKeys).set({ revokedAt: clock() }).where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt))).returning()
        if (!updated) {
          const [existing] = await tx.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1)
          if (!existing) throw new NotFoundError(`api key ${id} not found`)
          return existing
        }
        await appendAudit(tx, actor, meta, [{ action: 'api_key.revoked', targetType: 'api_key', targetId: id, clientId: updated.clientId }])
        newlyRevoked = true
        return updated
      })
      // The key and every JWT issued from it stop working on every instance, and open
      // subscriptions authenticated by either are told (onRevoked listeners).
      if (newlyRevoked) await revokedKeys.revoked(row.id)
      await cache.invalidate([authCache.key(row.secretHash), keyStateCache.key(row.id)])
      return view(row)
    },

    /** Batch load by id (GraphQL node/nodes): in the order of ids, null where absent or not visible to the actor. */
    async loadMany (actor: Actor, ids: readonly string[]): Promise<Array<ApiKeyView | null>> {
      const rows = await db.select().from(apiKeys).where(inArray(apiKeys.id, [...ids]))
      const byId = new Map(rows.map((r) => [r.id, r]))
      // As in list: a MANAGER sees its own client's keys, ADMIN and AUDITOR every key.
      return ids.map((id) => {
        const row = byId.get(id)
        return row && canSeeClientOf(actor, row.clientId) ? view(row) : null
      })
    },

    async list (actor: Actor): Promise<ApiKeyView[]> {
      const scope = clientScope(actor)
      const where = scope === null ? undefined : eq(apiKeys.clientId, scope)
      const rows = await db.select().from(apiKeys).where(where).orderBy(asc(apiKeys.id))
      return rows.map(view)
    },

    /** Resolves a bearer secret to an actor, or null. Served from memory after the first use. */
    async authenticate (secret: string): Promise<Actor | null> {
      const hash = lookupHash(config.pepper, secret)
      if (adminHash && safeEqual(hash, adminHash)) return { kind: 'apiKey', id: ADMIN_ENV_ACTOR_ID, role: 'ADMIN', clientId: null, keyId: null, expiresAt: null }
      if (!TOKEN_PATTERN.test(secret)) return null
      const read = readThrough(cache, authCache, [hash], async () => {
        const [row] = await db.select().from(apiKeys).where(and(eq(apiKeys.secretHash, hash), isNull(apiKeys.revokedAt))).limit(1)
        if (!row) return undefined
        revokedKeys.remember(row.id, true)
        return { id: row.id, role: row.role as Role, clientId: row.clientId, expiresAt: row.expiresAt?.getTime() ?? null, hash: row.secretHash }
      })
      // An L1 hit comes back as it is: no await for it.
      const cached = read instanceof Promise ? await read : read
      if (!cached || !safeEqual(cached.hash, hash)) return null
      // Belt and braces: the cached entry is dropped on revocation, the set knows at once.
      if (revokedKeys.known(cached.id) === true) return null
      const now = clock()
      if (cached.expiresAt !== null && cached.expiresAt <= now.getTime()) return null
      lastUsed.set(cached.id, now)
      return { kind: 'apiKey', id: cached.id, role: cached.role, clientId: cached.clientId, keyId: cached.id, expiresAt: cached.expiresAt }
    },

    /**
     * Whether the key a JWT was issued from is still active (exists, not revoked). From memory
     * while the bus is healthy; otherwise from PostgreSQL, through the cache, whose entries live
     * at most 2 s while the bus is silent.
     */
    async isActive (keyId: string): Promise<boolean> {
      const known = revokedKeys.known(keyId)
      if (known !== undefined) return !known
      const state = await readThrough(cache, keyStateCache, [keyId], async () => {
        const [row] = await db.select({ revokedAt: apiKeys.revokedAt }).from(apiKeys).where(eq(apiKeys.id, keyId)).limit(1)
        const active = Boolean(row) && row!.revokedAt === null
        if (row) revokedKeys.remember(keyId, active)
        return { active }
      })
      return state!.active
    },

    /** Audits a token exchange (no row changes, but a new credential exists until it expires). */
    async recordTokenIssued (actor: Actor, meta: RequestMeta | undefined, expiresAt: Date): Promise<void> {
      await db.transaction(async (tx) => {
        await appendAudit(tx, actor, meta, [{ action: 'api_key.token_issued', targetType: 'api_key', targetId: actor.id, clientId: actor.clientId, changes: { expiresAt: expiresAt.toISOString() } }])
      })
    },

    /** Writes the remembered last-use times (called by a background timer, not per request). */
    async flushLastUsed (): Promise<void> {
      const entries = [...lastUsed]
      lastUsed.clear()
      for (const [id, at] of entries) await db.update(apiKeys).set({ lastUsedAt: at }).where(eq(apiKeys.id, id))
    }
  }
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>
