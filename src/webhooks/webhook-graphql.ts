import { builder } from '../graphql/builder.ts'
import { pageArgs, toConnection } from '../graphql/connection.ts'
import type { DeliveryRow, WebhookView } from './webhook-service.ts'

const WebhookRef = builder.objectRef<WebhookView>('Webhook').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    clientId: t.exposeID('clientId', { nullable: true, description: 'null = events of every client (ADMIN only)' }),
    url: t.exposeString('url'),
    events: t.exposeStringList('events', { description: 'Domain event names; empty = every event' }),
    enabled: t.exposeBoolean('enabled'),
    consecutiveFailures: t.exposeInt('consecutiveFailures'),
    disabledAt: t.expose('disabledAt', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' })
  })
})

const WebhookDeliveryRef = builder.objectRef<DeliveryRow>('WebhookDelivery').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    eventId: t.exposeString('eventId'),
    eventType: t.exposeString('eventType'),
    status: t.exposeString('status', { description: 'PENDING | SUCCEEDED | FAILED (gave up after 24 h)' }),
    attempts: t.exposeInt('attempts'),
    nextAttemptAt: t.expose('nextAttemptAt', { type: 'DateTime' }),
    lastStatusCode: t.exposeInt('lastStatusCode', { nullable: true }),
    lastError: t.exposeString('lastError', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' })
  })
})

const CreateWebhookPayload = builder.objectRef<{ webhook: WebhookView, secret: string }>('CreateWebhookPayload').implement({
  fields: (t) => ({
    webhook: t.field({ type: WebhookRef, resolve: (p) => p.webhook }),
    secret: t.exposeString('secret', { description: 'Signing secret, shown once' })
  })
})

const CreateWebhookInput = builder.inputType('CreateWebhookInput', {
  fields: (t) => ({
    clientId: t.id({ description: 'Omit for every client (ADMIN only); a MANAGER defaults to its own client' }),
    url: t.string({ required: true }),
    events: t.stringList({ description: 'Domain event names, e.g. serial.revoked; empty or omitted = every event' })
  })
})
const DeleteWebhookInput = builder.inputType('DeleteWebhookInput', { fields: (t) => ({ id: t.id({ required: true }) }) })
const EnableWebhookInput = builder.inputType('EnableWebhookInput', { fields: (t) => ({ id: t.id({ required: true }) }) })

builder.queryFields((t) => ({
  webhooks: t.field({ type: [WebhookRef], authScopes: { authenticated: true }, resolve: (_root, _args, ctx) => ctx.services.webhooks.list(ctx.actor) }),
  webhookDeliveries: t.connection({
    type: WebhookDeliveryRef,
    authScopes: { authenticated: true },
    args: { webhookId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.webhooks.deliveries(ctx.actor, args.webhookId, pageArgs(args)), (d) => d.id)
  }, { name: 'WebhookDeliveryConnection' }, { name: 'WebhookDeliveryEdge' })
}))

builder.mutationFields((t) => ({
  createWebhook: t.field({
    type: CreateWebhookPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateWebhookInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.webhooks.create(ctx.actor, ctx.meta, input)
  }),
  deleteWebhook: t.field({
    type: WebhookRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeleteWebhookInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.webhooks.delete(ctx.actor, ctx.meta, input)
  }),
  enableWebhook: t.field({
    type: WebhookRef,
    authScopes: { writer: true },
    description: 'Re-enables a webhook disabled after persistent delivery failures',
    args: { input: t.arg({ type: EnableWebhookInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.webhooks.enable(ctx.actor, ctx.meta, input)
  })
}))
