import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import type { ClientView } from './client-service.ts'

export const ClientStatusEnum = builder.enumType('ClientStatus', {
  description: 'Whether a client\'s serials can validate',
  values: {
    ACTIVE: { description: 'Serials validate normally' },
    SUSPENDED: { description: 'Every serial of the client answers CLIENT_SUSPENDED until reinstated' }
  } as const
})

export const ClientRef = builder.objectRef<ClientView>('Client').implement({
  description: 'A customer of the vendor: owns serials, API keys of role MANAGER and webhooks',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Client id (cli_…)' }),
    clientNumber: t.exposeString('clientNumber', { description: 'The vendor\'s own reference for the customer, upper-case, unique (e.g. ACM-12345)' }),
    name: t.exposeString('name', { description: 'Display name' }),
    contactEmail: t.exposeString('contactEmail', { description: 'Contact address (stored encrypted)' }),
    status: t.field({ description: 'SUSPENDED: every serial of the client answers CLIENT_SUSPENDED', type: ClientStatusEnum, resolve: (c) => c.status as 'ACTIVE' | 'SUSPENDED' }),
    quotaPerMinute: t.exposeInt('quotaPerMinute', { description: 'Authenticated requests per minute for this client; null = no quota', nullable: true }),
    createdAt: t.expose('createdAt', { description: 'When the client was created', type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { description: 'When the client last changed', type: 'DateTime' })
  })
})

const ClientConnection = connectionType(ClientRef, 'Client', 'clients')

const ClientFilter = builder.inputType('ClientFilter', {
  description: 'Conditions on clients; all given ones must hold',
  fields: (t) => ({
    status: t.field({ description: 'Only clients in this status', type: ClientStatusEnum }),
    search: t.string({ description: 'Part of the name, case-insensitive (at most 100 characters)' })
  })
})

const CreateClientInput = builder.inputType('CreateClientInput', {
  description: 'A new client',
  fields: (t) => ({
    clientNumber: t.string({ required: true, description: 'The vendor\'s reference: 1–32 letters, digits and dashes; stored upper-case, unique' }),
    name: t.string({ description: 'Display name', required: true }),
    contactEmail: t.string({ description: 'Contact address (stored encrypted)', required: true }),
    quotaPerMinute: t.int({ description: 'Authenticated requests per minute for this client; null = none' })
  })
})

const UpdateClientInput = builder.inputType('UpdateClientInput', {
  description: 'Changes to a client; absent fields stay as they are',
  fields: (t) => ({
    id: t.id({ description: 'The client to change (cli_…)', required: true }),
    name: t.string({ description: 'New display name' }),
    contactEmail: t.string({ description: 'New contact address' }),
    quotaPerMinute: t.int({ description: 'New requests-per-minute quota; null = no quota (ADMIN only)' })
  })
})

const ClientIdInput = (name: string, description: string) => builder.inputType(name, {
  description,
  fields: (t) => ({ id: t.id({ required: true, description: 'The client (cli_…)' }) })
})
const SuspendClientInput = ClientIdInput('SuspendClientInput', 'The client to suspend')
const ReinstateClientInput = ClientIdInput('ReinstateClientInput', 'The client to reinstate')

builder.queryFields((t) => ({
  client: t.field({
    description: 'One client by id (a MANAGER: only its own)',
    type: ClientRef,
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true, description: 'Client id (cli_…)' }) },
    resolve: (_root, { id }, ctx) => ctx.services.clients.get(ctx.actor, id)
  }),
  clients: t.field({
    type: ClientConnection,
    authScopes: { authenticated: true },
    description: 'Clients the caller can see (a MANAGER: its own), oldest first',
    args: { ...forwardArgs(t.arg), filter: t.arg({ type: ClientFilter, description: 'Only clients that match every given condition' }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.clients.list(ctx.actor, pageArgs(args), args.filter), (c) => c.id)
  })
}))

builder.mutationFields((t) => ({
  createClient: t.field({
    description: 'ADMIN: creates a client',
    type: ClientRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateClientInput, required: true, description: 'The client to create' }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.create(ctx.actor, ctx.meta, input)
  }),
  updateClient: t.field({
    description: 'Changes a client\'s name, contact or quota (a MANAGER: only its own client\'s name and contact; its quota is FORBIDDEN)',
    type: ClientRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: UpdateClientInput, required: true, description: 'The client and its changes' }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.update(ctx.actor, ctx.meta, input)
  }),
  suspendClient: t.field({
    description: 'Suspends a client: its serials answer CLIENT_SUSPENDED',
    type: ClientRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: SuspendClientInput, required: true, description: 'The client to suspend' }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.suspend(ctx.actor, ctx.meta, input)
  }),
  reinstateClient: t.field({
    description: 'Lifts a client\'s suspension',
    type: ClientRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: ReinstateClientInput, required: true, description: 'The client to reinstate' }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.reinstate(ctx.actor, ctx.meta, input)
  })
}))
