import { builder } from '../graphql/builder.ts'
import { pageArgs, toConnection } from '../graphql/connection.ts'
import type { AuditVerification } from './audit-log.ts'
import type { AuditEntry } from './audit-service.ts'

const AuditEntryRef = builder.objectRef<AuditEntry>('AuditEntry').implement({
  // Defence in depth: even if a future field returns this type, anonymous callers get nothing.
  authScopes: { authenticated: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    seq: t.field({ type: 'String', resolve: (e) => String(e.seq) }),
    actorId: t.exposeString('actorId'),
    actorRole: t.exposeString('actorRole'),
    action: t.exposeString('action'),
    targetType: t.exposeString('targetType'),
    targetId: t.exposeString('targetId'),
    clientId: t.exposeID('clientId', { nullable: true }),
    changes: t.expose('changes', { type: 'JSON' }),
    ip: t.exposeString('ip', { nullable: true }),
    requestId: t.exposeString('requestId', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    prevHash: t.exposeString('prevHash'),
    hash: t.exposeString('hash')
  })
})

const AuditVerificationRef = builder.objectRef<AuditVerification>('AuditVerification').implement({
  fields: (t) => ({
    valid: t.exposeBoolean('valid'),
    checked: t.exposeInt('checked'),
    firstBrokenId: t.exposeID('firstBrokenId', { nullable: true })
  })
})

const AuditFilter = builder.inputType('AuditFilter', {
  fields: (t) => ({
    actorId: t.string(),
    action: t.string({ description: 'resource.verb, e.g. serial.revoked' }),
    targetId: t.string(),
    since: t.field({ type: 'DateTime' }),
    until: t.field({ type: 'DateTime' })
  })
})

builder.queryFields((t) => ({
  auditLog: t.connection({
    type: AuditEntryRef,
    authScopes: { authenticated: true },
    args: { filter: t.arg({ type: AuditFilter }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.audit.list(ctx.actor, pageArgs(args), args.filter), (e) => e.seq)
  }, { name: 'AuditEntryConnection' }, { name: 'AuditEntryEdge' }),
  verifyAuditLog: t.field({
    type: AuditVerificationRef,
    authScopes: { authenticated: true },
    resolve: (_root, _args, ctx) => ctx.services.audit.verify(ctx.actor)
  })
}))
