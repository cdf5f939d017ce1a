import { builder } from '../graphql/builder.ts'
import type { Actor, Role } from '../platform/auth.ts'
import { ROLES } from '../platform/auth.ts'
import { AuthorizationError, ValidationError } from '../platform/errors.ts'
import type { ApiKeyView } from './api-key-service.ts'

export const RoleEnum = builder.enumType('Role', { values: ROLES })

const ApiKeyRef = builder.objectRef<ApiKeyView>('ApiKey').implement({
  // Defence in depth: even if a future field returns this type, anonymous callers get nothing.
  authScopes: { authenticated: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    role: t.field({ type: RoleEnum, resolve: (k) => k.role as Role }),
    clientId: t.exposeID('clientId', { nullable: true }),
    prefix: t.exposeString('prefix', { description: 'First characters of the secret' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' })
  })
})

const CreateApiKeyPayload = builder.objectRef<{ apiKey: ApiKeyView, secret: string }>('CreateApiKeyPayload').implement({
  fields: (t) => ({
    apiKey: t.field({ type: ApiKeyRef, resolve: (p) => p.apiKey }),
    secret: t.exposeString('secret', { description: 'Shown once' })
  })
})

const MeRef = builder.objectRef<Actor>('Me').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    kind: t.exposeString('kind'),
    role: t.field({ type: RoleEnum, nullable: true, resolve: (a) => a.role }),
    clientId: t.exposeID('clientId', { nullable: true })
  })
})

const CreateApiKeyInput = builder.inputType('CreateApiKeyInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    role: t.field({ type: RoleEnum, required: true }),
    clientId: t.id({ description: 'Required for MANAGER keys' }),
    expiresAt: t.field({ type: 'DateTime' })
  })
})
const RevokeApiKeyInput = builder.inputType('RevokeApiKeyInput', { fields: (t) => ({ id: t.id({ required: true }) }) })

builder.queryFields((t) => ({
  me: t.field({ type: MeRef, authScopes: { authenticated: true }, resolve: (_root, _args, ctx) => ctx.actor }),
  apiKeys: t.field({ type: [ApiKeyRef], authScopes: { authenticated: true }, resolve: (_root, _args, ctx) => ctx.services.apiKeys.list(ctx.actor) })
}))

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreateApiKeyPayload,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.apiKeys.create(ctx.actor, ctx.meta, input)
  }),
  revokeApiKey: t.field({
    type: ApiKeyRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: RevokeApiKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.apiKeys.revoke(ctx.actor, ctx.meta, input)
  })
}))

const IssueTokenInput = builder.inputType('IssueTokenInput', {
  fields: (t) => ({ ttlSeconds: t.int({ description: '60 to 86,400 (default 3,600)' }) })
})

const IssueTokenPayload = builder.objectRef<{ token: string, expiresAt: Date }>('IssueTokenPayload').implement({
  fields: (t) => ({
    token: t.exposeString('token', { description: 'HS256 JWT; send as Authorization: Bearer <token>' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime' })
  })
})

builder.mutationField('issueToken', (t) => t.field({
  type: IssueTokenPayload,
  authScopes: { authenticated: true },
  args: { input: t.arg({ type: IssueTokenInput, required: true }) },
  resolve: async (_root, { input }, ctx) => {
    const ttl = input.ttlSeconds ?? 3600
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 86_400) throw new ValidationError('Validation failed', [{ field: 'ttlSeconds', message: 'must be between 60 and 86400' }])
    if (ctx.actor.kind !== 'apiKey') throw new AuthorizationError('a token is issued in exchange for an API key, not another token')
    const issued = ctx.issueToken(ctx.actor, ttl)
    await ctx.services.apiKeys.recordTokenIssued(ctx.actor, ctx.meta, issued.expiresAt)
    return issued
  }
}))
