import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import type { DeliveryRow, WebhookView } from './webhook-service.ts'

const WebhookRef = builder.objectRef<WebhookView>('Webhook').implement({
  description: 'An HTTPS endpoint that receives domain events, signed with the webhook\'s secret',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Webhook id (whk_…)' }),
    clientId: t.exposeID('clientId', { nullable: true, description: 'The client whose events it receives; null = every client (ADMIN only)' }),
    url: t.exposeString('url', { description: 'The HTTPS endpoint events are POSTed to' }),
    events: t.exposeStringList('events', { description: 'Domain event names; empty = every event' }),
    enabled: t.exposeBoolean('enabled', { description: 'False after persistent failures (see enableWebhook)' }),
    consecutiveFailures: t.exposeInt('consecutiveFailures', { description: 'Deliveries that failed in a row; reset by a success' }),
    disabledAt: t.expose('disabledAt', { description: 'When it was disabled after persistent failures; null = enabled', type: 'DateTime', nullable: true }),
    createdAt: t.expose('createdAt', { description: 'When the webhook was created', type: 'DateTime' })
  })
})

const WebhookDeliveryRef = builder.objectRef<DeliveryRow>('WebhookDelivery').implement({
  description: 'One event on its way to one webhook, with its attempts',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Delivery id (whd_…)' }),
    eventId: t.exposeString('eventId', { description: 'The domain event delivered (the id in the payload, for de-duplication)' }),
    eventType: t.exposeString('eventType', { description: 'The domain event\'s name, e.g. serial.revoked' }),
    status: t.exposeString('status', { description: 'PENDING | SUCCEEDED | FAILED (gave up after 24 h)' }),
    attempts: t.exposeInt('attempts', { description: 'Attempts made so far' }),
    nextAttemptAt: t.expose('nextAttemptAt', { description: 'When the next attempt is due (PENDING only)', type: 'DateTime' }),
    lastStatusCode: t.exposeInt('lastStatusCode', { description: 'HTTP status of the last attempt; null = no answer', nullable: true }),
    lastError: t.exposeString('lastError', { description: 'Why the last attempt failed; null = it did not', nullable: true }),
    createdAt: t.expose('createdAt', { description: 'When the event was queued for this webhook', type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { description: 'When the delivery last changed', type: 'DateTime' })
  })
})

const WebhookDeliveryConnection = connectionType(WebhookDeliveryRef, 'WebhookDelivery', 'webhook deliveries')

const CreateWebhookPayload = builder.objectRef<{ webhook: WebhookView, secret: string }>('CreateWebhookPayload').implement({
  description: 'A new webhook with its signing secret, shown this once',
  fields: (t) => ({
    webhook: t.field({ description: 'The new webhook', type: WebhookRef, resolve: (p) => p.webhook }),
    secret: t.exposeString('secret', { description: 'Signing secret, shown once' })
  })
})

const CreateWebhookInput = builder.inputType('CreateWebhookInput', {
  description: 'A new webhook',
  fields: (t) => ({
    clientId: t.id({ description: 'Omit for every client (ADMIN only); a MANAGER defaults to its own client' }),
    url: t.string({ description: 'HTTPS endpoint (public addresses only)', required: true }),
    events: t.stringList({ description: 'Domain event names, e.g. serial.revoked; empty or omitted = every event' })
  })
})
const DeleteWebhookInput = builder.inputType('DeleteWebhookInput', {
  description: 'The webhook to delete',
  fields: (t) => ({ id: t.id({ required: true, description: 'The webhook (whk_…)' }) })
})
const EnableWebhookInput = builder.inputType('EnableWebhookInput', {
  description: 'The webhook to enable again',
  fields: (t) => ({ id: t.id({ required: true, description: 'The webhook (whk_…)' }) })
})

builder.queryFields((t) => ({
  webhooks: t.field({ description: 'Webhooks the caller can see (a MANAGER: its own client\'s)', type: [WebhookRef], authScopes: { authenticated: true }, resolve: (_root, _args, ctx) => ctx.services.webhooks.list(ctx.actor) }),
  webhookDeliveries: t.field({
    type: WebhookDeliveryConnection,
    authScopes: { authenticated: true },
    description: 'Delivery attempts of one webhook, oldest first',
    args: { ...forwardArgs(t.arg), webhookId: t.arg.id({ required: true, description: 'The webhook (whk_…)' }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.webhooks.deliveries(ctx.actor, args.webhookId, pageArgs(args)), (d) => d.id)
  })
}))

builder.mutationFields((t) => ({
  createWebhook: t.field({
    description: 'Registers a webhook; its signing secret is in the answer, once',
    type: CreateWebhookPayload,
    authScopes: { writer: true },
    args: { input: t.arg({ type: CreateWebhookInput, required: true, description: 'The webhook to create' }) },
    resolve: (_root, { input }, ctx) => ctx.services.webhooks.create(ctx.actor, ctx.meta, input)
  }),
  deleteWebhook: t.field({
    description: 'Deletes a webhook; pending deliveries are dropped',
    type: WebhookRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: DeleteWebhookInput, required: true, description: 'The webhook to delete' }) },
    resolve: (_root, { input }, ctx) => ctx.services.webhooks.delete(ctx.actor, ctx.meta, input)
  }),
  enableWebhook: t.field({
    type: WebhookRef,
    authScopes: { writer: true },
    description: 'Re-enables a webhook disabled after persistent delivery failures',
    args: { input: t.arg({ type: EnableWebhookInput, required: true, description: 'The webhook to enable' }) },
    resolve: (_root, { input }, ctx) => ctx.services.webhooks.enable(ctx.actor, ctx.meta, input)
  })
}))
