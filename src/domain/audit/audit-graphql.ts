import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import type { AuditVerification } from './audit-log.ts'
import type { AuditEntry } from './audit-service.ts'

const AuditEntryRef = builder.objectRef<AuditEntry>('AuditEntry').implement({
  description: 'One change (or audited read) in the hash-chained audit log',
  interfaces: [NodeRef],
  // Defence in depth: even if a future field returns this type, anonymous callers get nothing.
  authScopes: { authenticated: true },
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Audit entry id (aud_…)' }),
    seq: t.field({ type: 'Seq', description: 'Position in the hash chain, increasing; the auditLog cursor', resolve: (e) => e.seq }),
    actorId: t.exposeString('actorId', { description: 'Who did it: an API key id, env:ADMIN_API_KEY, or anonymous' }),
    actorRole: t.exposeString('actorRole', { description: 'The actor\'s role at the time (or ANONYMOUS)' }),
    action: t.exposeString('action', { description: 'What happened, resource.verb (e.g. serial.revoked)' }),
    targetType: t.exposeString('targetType', { description: 'The kind of object acted on (client, serial, device, …)' }),
    targetId: t.exposeString('targetId', { description: 'The id of the object acted on' }),
    clientId: t.exposeID('clientId', { description: 'The client the object belongs to; null = vendor-wide', nullable: true }),
    changes: t.expose('changes', { description: 'What changed (never secrets or full serial numbers)', type: 'JSON' }),
    ip: t.exposeString('ip', { description: 'The caller\'s address; null for internal actions', nullable: true }),
    requestId: t.exposeString('requestId', { description: 'The request id, to match server logs', nullable: true }),
    createdAt: t.expose('createdAt', { description: 'When it happened', type: 'DateTime' }),
    prevHash: t.exposeString('prevHash', { description: 'Hash of the previous entry in the chain' }),
    hash: t.exposeString('hash', { description: 'SHA-256 over this entry and prevHash; verifyAuditLog recomputes it' })
  })
})

const AuditVerificationRef = builder.objectRef<AuditVerification>('AuditVerification').implement({
  description: 'The result of checking the audit log\'s hash chain',
  fields: (t) => ({
    valid: t.exposeBoolean('valid', { description: 'True when every entry\'s hash matches' }),
    checked: t.exposeInt('checked', { description: 'How many entries were checked' }),
    firstBrokenId: t.exposeID('firstBrokenId', { description: 'The first entry whose hash does not match; null when valid', nullable: true })
  })
})

const AuditEntryConnection = connectionType(AuditEntryRef, 'AuditEntry', 'audit log entries', 'newest first')

const AuditFilter = builder.inputType('AuditFilter', {
  description: 'Conditions on audit entries; all given ones must hold',
  fields: (t) => ({
    actorId: t.string({ description: 'Only entries by this actor' }),
    action: t.string({ description: 'Only this action, resource.verb (e.g. serial.revoked)' }),
    targetId: t.string({ description: 'Only entries about this object' }),
    since: t.field({ description: 'Only entries at or after this time', type: 'DateTime' }),
    until: t.field({ description: 'Only entries at or before this time', type: 'DateTime' })
  })
})

builder.queryFields((t) => ({
  auditLog: t.field({
    type: AuditEntryConnection,
    authScopes: { authenticated: true },
    description: 'The audit log, newest first (a MANAGER: entries of its own client)',
    args: { ...forwardArgs(t.arg), filter: t.arg({ type: AuditFilter, description: 'Only entries that match every given condition' }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.audit.list(ctx.actor, pageArgs(args), args.filter), (e) => e.seq)
  }),
  verifyAuditLog: t.field({
    description: 'ADMIN and AUDITOR: recomputes the hash chain of the whole audit log',
    type: AuditVerificationRef,
    authScopes: { authenticated: true },
    resolve: (_root, _args, ctx) => ctx.services.audit.verify(ctx.actor)
  })
}))
