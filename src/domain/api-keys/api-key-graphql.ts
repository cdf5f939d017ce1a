import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import type { Actor, Role } from '../../kernel/access.ts'
import { ROLES } from '../../kernel/access.ts'
import { AuthorizationError, ValidationError } from '../../kernel/errors.ts'
import type { ApiKeyView } from './api-key-service.ts'

const ROLE_DESCRIPTIONS: Record<Role, string> = {
  ADMIN: 'Everything, for every client',
  MANAGER: 'Reads and changes one client\'s data only',
  AUDITOR: 'Reads everything, changes nothing'
}
export const RoleEnum = builder.enumType('Role', {
  description: 'What an API key (and the tokens issued from it) may do',
  values: Object.fromEntries(ROLES.map((role) => [role, { description: ROLE_DESCRIPTIONS[role] }])) as Record<Role, { description: string }>
})

const ApiKeyRef = builder.objectRef<ApiKeyView>('ApiKey').implement({
  description: 'A credential for this API; its secret is shown only once, at creation',
  interfaces: [NodeRef],
  // Defence in depth: even if a future field returns this type, anonymous callers get nothing.
  authScopes: { authenticated: true },
  fields: (t) => ({
    id: t.exposeID('id', { description: 'API key id (key_…)' }),
    name: t.exposeString('name', { description: 'A name for people, e.g. what the key is for' }),
    role: t.field({ description: 'What the key may do', type: RoleEnum, resolve: (k) => k.role as Role }),
    clientId: t.exposeID('clientId', { description: 'The one client a MANAGER key sees; null for ADMIN and AUDITOR keys', nullable: true }),
    prefix: t.exposeString('prefix', { description: 'First characters of the secret' }),
    expiresAt: t.expose('expiresAt', { description: 'When the key stops working; null = never', type: 'DateTime', nullable: true }),
    lastUsedAt: t.expose('lastUsedAt', { description: 'Last successful use (may lag a minute); null = never used', type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revokedAt', { description: 'When the key was revoked; null = active', type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { description: 'When the key was created', type: 'DateTime' })
  })
})

const CreateApiKeyPayload = builder.objectRef<{ apiKey: ApiKeyView, secret: string }>('CreateApiKeyPayload').implement({
  description: 'A new API key with its secret, shown this once',
  fields: (t) => ({
    apiKey: t.field({ description: 'The new key', type: ApiKeyRef, resolve: (p) => p.apiKey }),
    secret: t.exposeString('secret', { description: 'The secret to send as Authorization: Bearer …; shown once, stored only as a hash' })
  })
})

const MeRef = builder.objectRef<Actor>('Me').implement({
  description: 'The caller: the credential of this request. Not a Node: its id is the API key\'s id, fetch the key itself with node(id)',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The API key id behind the credential (key_…), or env:ADMIN_API_KEY for the bootstrap key' }),
    kind: t.exposeString('kind', { description: 'How the caller authenticated: apiKey or jwt' }),
    role: t.field({ description: 'The caller\'s role', type: RoleEnum, nullable: true, resolve: (a) => a.role }),
    clientId: t.exposeID('clientId', { description: 'The one client a MANAGER sees; null otherwise', nullable: true })
  })
})

const CreateApiKeyInput = builder.inputType('CreateApiKeyInput', {
  description: 'A new API key',
  fields: (t) => ({
    name: t.string({ description: 'A name for people (what the key is for)', required: true }),
    role: t.field({ description: 'What the key may do', type: RoleEnum, required: true }),
    clientId: t.id({ description: 'Required for MANAGER keys' }),
    expiresAt: t.field({ description: 'When the key stops working; omitted = never', type: 'DateTime' })
  })
})
const RevokeApiKeyInput = builder.inputType('RevokeApiKeyInput', {
  description: 'The API key to revoke',
  fields: (t) => ({ id: t.id({ required: true, description: 'The key (key_…)' }) })
})

builder.queryFields((t) => ({
  me: t.field({ description: 'Who the caller is', type: MeRef, authScopes: { authenticated: true }, resolve: (_root, _args, ctx) => ctx.actor }),
  apiKeys: t.field({ description: 'API keys the caller can see (a MANAGER: its own client\'s)', type: [ApiKeyRef], authScopes: { authenticated: true }, resolve: (_root, _args, ctx) => ctx.services.apiKeys.list(ctx.actor) })
}))

builder.mutationFields((t) => ({
  createApiKey: t.field({
    description: 'ADMIN: creates an API key; its secret is in the answer, once',
    type: CreateApiKeyPayload,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateApiKeyInput, required: true, description: 'The key to create' }) },
    resolve: (_root, { input }, ctx) => ctx.services.apiKeys.create(ctx.actor, ctx.meta, input)
  }),
  revokeApiKey: t.field({
    description: 'ADMIN: revokes an API key at once on every instance, with the tokens issued from it',
    type: ApiKeyRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: RevokeApiKeyInput, required: true, description: 'The key to revoke' }) },
    resolve: (_root, { input }, ctx) => ctx.services.apiKeys.revoke(ctx.actor, ctx.meta, input)
  })
}))

const IssueTokenInput = builder.inputType('IssueTokenInput', {
  description: 'How long the token lives',
  fields: (t) => ({ ttlSeconds: t.int({ description: 'Lifetime in seconds: 60 to 86,400 (default 3,600)' }) })
})

const IssueTokenPayload = builder.objectRef<{ token: string, expiresAt: Date }>('IssueTokenPayload').implement({
  description: 'A short-lived token standing in for the API key',
  fields: (t) => ({
    token: t.exposeString('token', { description: 'HS256 JWT; send as Authorization: Bearer <token>' }),
    expiresAt: t.expose('expiresAt', { description: 'When the token stops working', type: 'DateTime' })
  })
})

builder.mutationField('issueToken', (t) => t.field({
  description: 'Exchanges the calling API key for a JWT with the same role and client',
  type: IssueTokenPayload,
  authScopes: { authenticated: true },
  args: { input: t.arg({ type: IssueTokenInput, required: true, description: 'The token\'s lifetime' }) },
  resolve: async (_root, { input }, ctx) => {
    const ttl = input.ttlSeconds ?? 3600
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 86_400) throw new ValidationError('Validation failed', [{ field: 'ttlSeconds', message: 'must be between 60 and 86400' }])
    if (ctx.actor.kind !== 'apiKey') throw new AuthorizationError('a token is issued in exchange for an API key, not another token')
    const issued = ctx.issueToken(ctx.actor, ttl)
    await ctx.services.apiKeys.recordTokenIssued(ctx.actor, ctx.meta, issued.expiresAt)
    return issued
  }
}))
