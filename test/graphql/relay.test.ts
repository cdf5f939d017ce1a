// Relay: Node on every object with an id, node/nodes with the tenant rules used everywhere (another
// client's object is null + NOT_FOUND), plain prefixed ids, and connections that offer only the
// arguments they honour (first/after).
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { getNamedType, isInterfaceType, isObjectType } from 'graphql'
import { schema } from '../../src/main/schema.ts'
import { build, createApiKey, createClient, createSerial, gql, gqlOk, restValidate } from '../helper.ts'

const NODE_TYPES = ['ApiKey', 'AuditEntry', 'Client', 'Device', 'Policy', 'PublicKey', 'Serial', 'UsageEvent', 'Webhook', 'WebhookDelivery']

t.test('schema: Node on every object with an id, node and nodes, forward-only connections', async (t) => {
  const node = schema.getType('Node')
  t.ok(isInterfaceType(node), 'interface Node exists')
  const implementing = schema.getPossibleTypes(node as never).map((type) => type.name).sort()
  t.same(implementing, NODE_TYPES)
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue
    const id = type.getFields().id
    if (!id || type.name === 'Me') continue // Me is the caller's credential, fetched as ApiKey by node(id)
    t.ok(type.getInterfaces().some((i) => i.name === 'Node'), `${type.name} implements Node`)
    t.equal(String(id.type), 'ID!', `${type.name}.id is ID!`)
  }
  const query = schema.getQueryType()!.getFields()
  t.equal(String(query.node!.type), 'Node')
  t.same(query.node!.args.map((a) => `${a.name}: ${String(a.type)}`), ['id: ID!'])
  t.equal(String(query.nodes!.type), '[Node]!')
  t.same(query.nodes!.args.map((a) => `${a.name}: ${String(a.type)}`), ['ids: [ID!]!'])

  let connections = 0
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type)) continue
    for (const field of Object.values(type.getFields())) {
      if (!getNamedType(field.type).name.endsWith('Connection')) continue
      connections++
      const args = field.args.map((a) => a.name)
      t.ok(args.includes('first') && args.includes('after'), `${type.name}.${field.name} takes first/after`)
      t.notOk(args.includes('last') || args.includes('before'), `${type.name}.${field.name} offers no last/before`)
    }
  }
  t.ok(connections >= 6, `${connections} connection fields checked`)
})

interface Fixture { clientId: string, serialId: string, serialNumber: string, deviceRecordId: string, usageEventId: string, managerKey: string, managerKeyId: string, webhookId: string }

const NODE_QUERY = 'query ($id: ID!) { node(id: $id) { __typename id } }'
const NODES_QUERY = 'query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }'

async function fixture (app: Awaited<ReturnType<typeof build>>, hookUrl: string): Promise<Fixture> {
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 2 })
  const validated = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'relay-device-1' })
  if (validated.body.code !== 'VALID') throw new Error(`validation failed: ${JSON.stringify(validated.body)}`)
  const usage = await gqlOk<{ recordUsage: { usageEvent: { id: string } } }>(app,
    'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { usageEvent { id } } }',
    { input: { serialNumber: serial.serialNumber, deviceId: 'relay-device-1', quantity: 2 } }, null)
  const devices = await gqlOk<{ serial: { devices: { edges: Array<{ node: { id: string } }> } } }>(app,
    'query ($id: ID!) { serial(id: $id) { devices(first: 5) { edges { node { id } } } } }', { id: serial.id })
  const managerKey = await createApiKey(app, 'MANAGER', client.id)
  const me = await gqlOk<{ me: { id: string } }>(app, '{ me { id } }', {}, managerKey)
  const hook = await gqlOk<{ createWebhook: { webhook: { id: string } } }>(app,
    'mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }',
    { input: { clientId: client.id, url: hookUrl } })
  return {
    clientId: client.id,
    serialId: serial.id,
    serialNumber: serial.serialNumber,
    deviceRecordId: devices.serial.devices.edges[0]!.node.id,
    usageEventId: usage.recordUsage.usageEvent.id,
    managerKey,
    managerKeyId: me.me.id,
    webhookId: hook.createWebhook.webhook.id
  }
}

async function receiver (t: { teardown (fn: () => unknown): void }): Promise<string> {
  const server: Server = createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
}

async function eventually<T> (fn: () => Promise<T | undefined>): Promise<T> {
  // Bounded wait for the outbox relay; not a timing assertion.
  for (let i = 0; i < 200; i++) {
    const value = await fn()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('condition not met')
}

t.test('node and nodes resolve every type, with the tenant rules', async (t) => {
  const app = await build(t, { env: { WEBHOOK_ALLOW_PRIVATE: 'true' } })
  const hookUrl = await receiver(t)
  const a = await fixture(app, hookUrl)
  const b = await fixture(app, hookUrl)
  const auditorKey = await createApiKey(app, 'AUDITOR')

  // A serial change after the webhook exists queues a delivery for it.
  await createSerial(app, a.clientId)
  const deliveryId = await eventually(async () => {
    const res = await gqlOk<{ webhookDeliveries: { edges: Array<{ node: { id: string } }> } }>(app,
      'query ($id: ID!) { webhookDeliveries(webhookId: $id, first: 1) { edges { node { id } } } }', { id: a.webhookId })
    return res.webhookDeliveries.edges[0]?.node.id
  })
  const audit = await gqlOk<{ auditLog: { edges: Array<{ node: { id: string, clientId: string | null } }> } }>(app,
    'query ($f: AuditFilter) { auditLog(first: 1, filter: $f) { edges { node { id clientId } } } }', { f: { targetId: a.serialId } })
  const auditId = audit.auditLog.edges[0]!.node.id
  const policy = await gqlOk<{ createPolicy: { id: string } }>(app,
    'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }', { input: { name: 'Relay test', maxDevices: 3 } })

  const ofA: Array<[string, string]> = [
    ['Client', a.clientId], ['Serial', a.serialId], ['Device', a.deviceRecordId], ['UsageEvent', a.usageEventId],
    ['ApiKey', a.managerKeyId], ['AuditEntry', auditId], ['Webhook', a.webhookId], ['WebhookDelivery', deliveryId]
  ]
  for (const [type, id] of ofA) t.match(id, /^[a-z]{3}_[0-9A-Z]{26}$/, `${type} id stays a plain prefixed id`)

  await t.test('ADMIN and AUDITOR read every type; MANAGER its own client', async (t) => {
    for (const key of [undefined, auditorKey, a.managerKey]) {
      for (const [type, id] of ofA) {
        const res = await gql(app, NODE_QUERY, { id }, key)
        t.same(res.errors, undefined, `${type} by ${key === a.managerKey ? 'MANAGER' : key ? 'AUDITOR' : 'ADMIN'}`)
        t.same(res.data?.node, { __typename: type, id })
      }
    }
    const res = await gqlOk(app, NODE_QUERY, { id: policy.createPolicy.id }, a.managerKey)
    t.same(res.node, { __typename: 'Policy', id: policy.createPolicy.id }, 'policies are vendor-wide: every role reads them')
  })

  await t.test('fields of the concrete type through node', async (t) => {
    const res = await gqlOk(app, 'query ($id: ID!) { node(id: $id) { ... on Serial { id clientId maskedNumber devices(first: 1) { edges { node { id } } } } } }', { id: a.serialId }, a.managerKey)
    t.equal(res.node.clientId, a.clientId)
    t.equal(res.node.devices.edges[0].node.id, a.deviceRecordId)
  })

  await t.test('another client\'s object: null + NOT_FOUND, for every type', async (t) => {
    const ofB: Array<[string, string]> = [['Client', b.clientId], ['Serial', b.serialId], ['Device', b.deviceRecordId], ['UsageEvent', b.usageEventId],
      ['ApiKey', b.managerKeyId], ['Webhook', b.webhookId]]
    for (const [type, id] of [...ofB, ['AuditEntry', auditId], ['WebhookDelivery', deliveryId]] as Array<[string, string]>) {
      // Client A's audit entry and delivery are B's "other client" objects too.
      const key = ofB.some(([, x]) => x === id) ? a.managerKey : b.managerKey
      const res = await gql(app, NODE_QUERY, { id }, key)
      t.equal(res.data?.node, null, `${type}: null`)
      t.equal(res.errors?.[0]?.extensions.code, 'NOT_FOUND', `${type}: NOT_FOUND`)
      t.same(res.errors?.[0]?.path, ['node'])
    }
  })

  await t.test('nodes: order kept, one NOT_FOUND per hidden or unknown id', async (t) => {
    const ids = [a.serialId, b.serialId, a.clientId, 'ser_00000000000000000000000000', 'nonsense']
    for (let run = 0; run < 3; run++) { // the 2nd and 3rd runs go through the JIT-compiled query
      const res = await gql(app, NODES_QUERY, { ids }, a.managerKey)
      t.same(res.data?.nodes, [{ __typename: 'Serial', id: a.serialId }, null, { __typename: 'Client', id: a.clientId }, null, null], `run ${run}`)
      // Errors come in completion order; what matters is one per failed index.
      t.same((res.errors ?? []).map((e) => [e.path, e.extensions.code]).sort((x, y) => Number(x[0]![1]) - Number(y[0]![1])), [
        [['nodes', 1], 'NOT_FOUND'], [['nodes', 3], 'NOT_FOUND'], [['nodes', 4], 'NOT_FOUND']
      ], `run ${run}: errors at their index`)
    }
    const many = await gql(app, NODES_QUERY, { ids: Array.from({ length: 101 }, () => a.serialId) })
    t.equal(many.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', 'at most 100 ids')
  })

  await t.test('anonymous: AUTHENTICATION_ERROR, except for the public key', async (t) => {
    const res = await gql(app, NODE_QUERY, { id: a.serialId }, null)
    t.equal(res.data?.node, null)
    t.equal(res.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
    const key = await gqlOk(app, '{ publicKey { id keyId } }', {}, null)
    t.equal(key.publicKey.id, key.publicKey.keyId, 'PublicKey.id is its keyId')
    const byNode = await gqlOk(app, 'query ($id: ID!) { node(id: $id) { __typename id ... on PublicKey { pem } } }', { id: key.publicKey.id }, null)
    t.equal(byNode.node.__typename, 'PublicKey')
    t.match(byNode.node.pem, /BEGIN PUBLIC KEY/)
    const wrong = await gql(app, NODE_QUERY, { id: '0123456789abcdef' }, null)
    t.equal(wrong.errors?.[0]?.extensions.code, 'NOT_FOUND', 'another key id')
  })
})

t.test('connections page forward with first/after and refuse last/before as unknown arguments', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const made: string[] = []
  for (let i = 0; i < 5; i++) made.push((await createSerial(app, client.id)).id)
  const PAGE = `query ($after: String, $f: SerialFilter) { serials(first: 2, after: $after, filter: $f) {
    edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`
  const seen: string[] = []
  let after: string | null = null
  const hasNext: boolean[] = []
  for (;;) {
    const page: Record<string, any> = (await gqlOk(app, PAGE, { after, f: { clientId: client.id } })).serials
    seen.push(...page.edges.map((e: { node: { id: string } }) => e.node.id))
    hasNext.push(page.pageInfo.hasNextPage)
    t.equal(page.pageInfo.hasPreviousPage, false)
    t.equal(page.pageInfo.startCursor, page.edges[0].cursor)
    t.equal(page.pageInfo.endCursor, page.edges.at(-1).cursor)
    if (!page.pageInfo.hasNextPage) break
    after = page.pageInfo.endCursor
  }
  t.same(seen, made, 'every serial once, in creation order')
  t.same(hasNext, [true, true, false])

  for (const [query, arg] of [
    ['{ serials(last: 2) { edges { cursor } } }', 'last'],
    ['{ clients(first: 2, before: "eA") { edges { cursor } } }', 'before'],
    ['{ auditLog(last: 1) { edges { cursor } } }', 'last']
  ] as const) {
    const res = await gql(app, query)
    t.equal(res.data ?? null, null, `${arg}: not executed`)
    t.match(res.errors?.[0]?.message, new RegExp(`Unknown argument "${arg}"`), `${arg}: not in the schema`)
  }
})
