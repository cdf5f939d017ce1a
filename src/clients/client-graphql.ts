import { builder } from '../graphql/builder.ts'
import { pageArgs, toConnection } from '../graphql/connection.ts'
import type { ClientView } from './client-service.ts'

export const ClientStatusEnum = builder.enumType('ClientStatus', { values: ['ACTIVE', 'SUSPENDED'] as const })

export const ClientRef = builder.objectRef<ClientView>('Client').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    clientNumber: t.exposeString('clientNumber'),
    name: t.exposeString('name'),
    contactEmail: t.exposeString('contactEmail'),
    status: t.field({ type: ClientStatusEnum, resolve: (c) => c.status as 'ACTIVE' | 'SUSPENDED' }),
    quotaPerMinute: t.exposeInt('quotaPerMinute', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' })
  })
})

const ClientFilter = builder.inputType('ClientFilter', {
  fields: (t) => ({
    status: t.field({ type: ClientStatusEnum }),
    search: t.string({ description: 'Part of the name, case-insensitive' })
  })
})

const CreateClientInput = builder.inputType('CreateClientInput', {
  fields: (t) => ({
    clientNumber: t.string({ required: true, description: '1–32 letters, digits and dashes; stored upper-case' }),
    name: t.string({ required: true }),
    contactEmail: t.string({ required: true }),
    quotaPerMinute: t.int({ description: 'Authenticated requests per minute for this client; null = none' })
  })
})

const UpdateClientInput = builder.inputType('UpdateClientInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    contactEmail: t.string(),
    quotaPerMinute: t.int()
  })
})

const ClientIdInput = (name: string) => builder.inputType(name, { fields: (t) => ({ id: t.id({ required: true }) }) })
const SuspendClientInput = ClientIdInput('SuspendClientInput')
const ReinstateClientInput = ClientIdInput('ReinstateClientInput')

builder.queryFields((t) => ({
  client: t.field({
    type: ClientRef,
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => ctx.services.clients.get(ctx.actor, id)
  }),
  clients: t.connection({
    type: ClientRef,
    authScopes: { authenticated: true },
    args: { filter: t.arg({ type: ClientFilter }) },
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.clients.list(ctx.actor, pageArgs(args), args.filter), (c) => c.id)
  }, { name: 'ClientConnection' }, { name: 'ClientEdge' })
}))

builder.mutationFields((t) => ({
  createClient: t.field({
    type: ClientRef,
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreateClientInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.create(ctx.actor, ctx.meta, input)
  }),
  updateClient: t.field({
    type: ClientRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: UpdateClientInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.update(ctx.actor, ctx.meta, input)
  }),
  suspendClient: t.field({
    type: ClientRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: SuspendClientInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.suspend(ctx.actor, ctx.meta, input)
  }),
  reinstateClient: t.field({
    type: ClientRef,
    authScopes: { writer: true },
    args: { input: t.arg({ type: ReinstateClientInput, required: true }) },
    resolve: (_root, { input }, ctx) => ctx.services.clients.reinstate(ctx.actor, ctx.meta, input)
  })
}))
