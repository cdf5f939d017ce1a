// Relay object identification with the service's own ids. Every id carries its type in a prefix
// (`cli_…`, `ser_…`, see platform/ids.ts), so node(id) dispatches on the prefix and the ids stay
// exactly what REST, webhooks and clients already use: no base64 global ids. The public key is the
// one object without a prefixed id; its id is its keyId (16 hex digits).
import { builder } from './builder.ts'
import type { GraphQLContext, Loaders } from './context.ts'
import { AuthenticationError, NotFoundError, ValidationError } from '../kernel/errors.ts'
import { ID_PATTERN } from '../kernel/ids.ts'
import { MAX_PAGE } from '../kernel/pagination.ts'

interface NodeKind { type: string, noun: string, loader: keyof Loaders }

/** Prefix → GraphQL type and loader. Other prefixes (bat_, a batch id) name no object here. */
export const NODE_KINDS: Record<string, NodeKind> = {
  cli: { type: 'Client', noun: 'client', loader: 'client' },
  ser: { type: 'Serial', noun: 'serial', loader: 'serial' },
  dev: { type: 'Device', noun: 'device', loader: 'device' },
  use: { type: 'UsageEvent', noun: 'usage event', loader: 'usageEvent' },
  key: { type: 'ApiKey', noun: 'API key', loader: 'apiKey' },
  aud: { type: 'AuditEntry', noun: 'audit entry', loader: 'auditEntry' },
  whk: { type: 'Webhook', noun: 'webhook', loader: 'webhook' },
  whd: { type: 'WebhookDelivery', noun: 'webhook delivery', loader: 'webhookDelivery' },
  pol: { type: 'Policy', noun: 'policy', loader: 'policy' }
}

const PUBLIC_KEY_ID = /^[0-9a-f]{16}$/

interface Identified { id?: unknown, keyId?: unknown, pem?: unknown }

function nodeId (node: Identified): string {
  return String(node.id ?? node.keyId)
}

export const NodeRef = builder.interfaceRef<object>('Node').implement({
  description: 'An object that node(id) fetches again by its id. Ids are the service\'s own prefixed ids ' +
    '(cli_…, ser_…, dev_…, use_…, key_…, aud_…, whk_…, whd_…, pol_…), unique across all types, used as they are',
  fields: (t) => ({
    id: t.id({ description: 'Unique across all types; pass it to node(id)', resolve: (node) => nodeId(node as Identified) })
  }),
  resolveType: (node) => {
    const value = node as Identified
    if (value.id === undefined && typeof value.keyId === 'string' && value.pem !== undefined) return 'PublicKey'
    const kind = NODE_KINDS[nodeId(value).slice(0, 3)]
    if (!kind) throw new Error(`no Node type for id ${nodeId(value)}`)
    return kind.type
  }
})

/** One object by id under the tenant rules: absent and not visible are both NOT_FOUND. */
export async function loadNode (ctx: GraphQLContext, id: string): Promise<object> {
  if (PUBLIC_KEY_ID.test(id)) {
    const key = ctx.services.certificates.publicKey()
    if (key.keyId === id) return key
    throw new NotFoundError(`node ${id} not found`)
  }
  if (ctx.actor.role === null) throw new AuthenticationError()
  const prefix = ID_PATTERN.test(id) ? id.slice(0, 3) : ''
  const kind = NODE_KINDS[prefix]
  const found = kind ? await ctx.loaders[kind.loader].load(id) : null
  if (!found) throw new NotFoundError(`${kind?.noun ?? 'node'} ${id} not found`)
  return found
}

builder.queryFields((t) => ({
  node: t.field({
    type: NodeRef,
    nullable: true,
    description: 'Any object by its id, under the same tenant rules as everywhere: another client\'s object is null with a NOT_FOUND error. ' +
      'Needs an API key or token, except for the public key (its keyId)',
    args: { id: t.arg.id({ required: true, description: 'An id as returned by this API, e.g. ser_…' }) },
    resolve: (_root, { id }, ctx) => loadNode(ctx, String(id))
  }),
  nodes: t.field({
    type: [NodeRef],
    nullable: { list: false, items: true },
    description: `Objects by id, in the order asked (at most ${MAX_PAGE}); each one not found or not visible is null with a NOT_FOUND error at its index`,
    args: { ids: t.arg.idList({ required: true, description: `Up to ${MAX_PAGE} ids as returned by this API` }) },
    resolve: (_root, { ids }, ctx) => {
      if (ids.length > MAX_PAGE) throw new ValidationError('Validation failed', [{ field: 'ids', message: `at most ${MAX_PAGE} ids` }])
      // Each failure is an Error in its slot, not a rejected promise: graphql-js and graphql-jit
      // (mercurius's compiled queries) both answer null + the error at that index, whereas
      // graphql-jit drops trailing rejected items from the list.
      return Promise.all(ids.map((id) => loadNode(ctx, String(id)).catch((error: unknown) => error as Error)))
    }
  })
}))
