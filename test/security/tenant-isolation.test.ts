// Tenant isolation and role matrix, walked over every root operation of the schema. The list of
// operations comes from the schema itself: adding an operation without a row here fails the test.
import t from 'tap'
import { createClient as wsClient } from 'graphql-ws'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import { build, createApiKey, createClient, createSerial, gql, gqlOk, type GqlResult } from '../helper.ts'

interface World {
  app: FastifyInstance
  a: { id: string, serialId: string, serialNumber: string }
  b: { id: string, clientNumber: string, serialId: string, serialNumber: string, keyId: string, deviceId: string, webhookId: string }
  manager: string
  auditor: string
  policyId: string
}

/**
 * MANAGER of A against B's objects: NOT_FOUND (the object does not exist for it), FORBIDDEN (an
 * ADMIN-only operation; no object is consulted), SCOPED (a list/own-data answer holding nothing of
 * B), PUBLIC (the serial number is the credential: the same answer as for an anonymous caller).
 */
type Expect = 'NOT_FOUND' | 'FORBIDDEN' | 'SCOPED' | 'PUBLIC'
interface Row {
  expect: Expect
  /** Expected for an AUDITOR calling the same operation (read-only role). */
  auditor: Expect | 'ALLOWED'
  run: (w: World, token: string) => Promise<GqlResult>
  /** For SCOPED rows: the answer must not mention any id of client B. */
  scoped?: (w: World, res: GqlResult) => void
}

const call = (query: string, variables: (w: World) => Record<string, unknown> = () => ({})) =>
  (w: World, token: string) => gql(w.app, query, variables(w), token)

const noB = (w: World, res: GqlResult) => {
  const text = JSON.stringify(res.data)
  for (const id of [w.b.id, w.b.serialId, w.b.keyId, w.b.clientNumber, w.b.webhookId]) {
    if (text.includes(id)) throw new Error(`answer mentions ${id} of client B: ${text.slice(0, 300)}`)
  }
}

const SERIAL_FIELDS = 'id clientId maskedNumber client { id contactEmail } devices(first: 5) { edges { node { id deviceId deviceInfo } } }'

const queries: Record<string, Row> = {
  me: { expect: 'SCOPED', auditor: 'ALLOWED', run: call('{ me { id role clientId } }'), scoped: noB },
  publicKey: { expect: 'PUBLIC', auditor: 'ALLOWED', run: call('{ publicKey { keyId } }') },
  licenseStatus: { expect: 'PUBLIC', auditor: 'PUBLIC', run: call('query ($n: String!) { licenseStatus(serialNumber: $n) { status devices { deviceId } } }', (w) => ({ n: w.b.serialNumber })) },
  client: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($id: ID!) { client(id: $id) { id contactEmail } }', (w) => ({ id: w.b.id })) },
  clients: {
    expect: 'SCOPED',
    auditor: 'ALLOWED',
    run: call('query ($s: String) { clients(first: 100, filter: { search: $s }) { edges { node { id clientNumber } } } }', (w) => ({ s: w.b.clientNumber })),
    scoped: noB
  },
  serial: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call(`query ($id: ID!) { serial(id: $id) { ${SERIAL_FIELDS} } }`, (w) => ({ id: w.b.serialId })) },
  serials: {
    expect: 'SCOPED',
    auditor: 'ALLOWED',
    run: async (w, token) => {
      const res = await gql(w.app, `query ($c: ID) { serials(first: 100, filter: { clientId: $c }) { edges { node { ${SERIAL_FIELDS} } } } }`, { c: w.b.id }, token)
      // Either answer keeps B hidden: NOT_FOUND for the filter, or an empty page.
      if (res.errors?.[0]?.extensions.code === 'NOT_FOUND') return { status: 200, data: { serials: { edges: [] } } }
      return res
    },
    scoped: (w, res) => {
      noB(w, res)
      const all = JSON.stringify(res.data)
      if (all.includes(w.a.serialId)) throw new Error('filtering by client B returned client A serials')
    }
  },
  apiKeys: { expect: 'SCOPED', auditor: 'ALLOWED', run: call('{ apiKeys { id clientId } }'), scoped: noB },
  auditLog: {
    expect: 'SCOPED',
    auditor: 'ALLOWED',
    run: async (w, token) => {
      const all = await gql(w.app, '{ auditLog(first: 100) { edges { node { id clientId targetId changes } } } }', {}, token)
      const byTarget = await gql(w.app, 'query ($t: String) { auditLog(first: 100, filter: { targetId: $t }) { edges { node { id } } } }', { t: w.b.serialId }, token)
      if (byTarget.errors) return byTarget
      if ((byTarget.data as any).auditLog.edges.length !== 0) return { status: 200, data: { leak: w.b.serialId } }
      return all
    },
    scoped: noB
  },
  verifyAuditLog: { expect: 'FORBIDDEN', auditor: 'ALLOWED', run: call('{ verifyAuditLog { valid } }') },
  clientStatistics: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($id: ID!) { clientStatistics(clientId: $id) { serialsTotal } }', (w) => ({ id: w.b.id })) },
  licenseSharing: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($id: ID!) { licenseSharing(clientId: $id) { score } }', (w) => ({ id: w.b.id })) },
  usagePatterns: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($s: ID) { usagePatterns(serialId: $s, granularity: DAY) { quantity } }', (w) => ({ s: w.b.serialId })) },
  usageByFeature: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($id: ID) { usageByFeature(clientId: $id) { throughSeq features { feature quantity } } }', (w) => ({ id: w.b.id })) },
  validationsPerMinute: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($id: ID) { validationsPerMinute(clientId: $id) { minute code count } }', (w) => ({ id: w.b.id })) },
  webhooks: { expect: 'SCOPED', auditor: 'ALLOWED', run: call('{ webhooks { id clientId url } }'), scoped: noB },
  webhookDeliveries: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($id: ID!) { webhookDeliveries(webhookId: $id, first: 5) { edges { node { id } } } }', (w) => ({ id: w.b.webhookId })) },
  // Relay: every one of B's objects is NOT_FOUND through node/nodes too.
  node: {
    expect: 'NOT_FOUND',
    auditor: 'ALLOWED',
    run: async (w, token) => {
      for (const id of [w.b.id, w.b.serialId, w.b.keyId, w.b.webhookId]) {
        const res = await gql(w.app, 'query ($id: ID!) { node(id: $id) { id } }', { id }, token)
        if (!res.errors) return res
        if (res.errors[0]?.extensions.code !== 'NOT_FOUND') return res
      }
      return gql(w.app, 'query ($id: ID!) { node(id: $id) { id } }', { id: w.b.serialId }, token)
    }
  },
  nodes: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($ids: [ID!]!) { nodes(ids: $ids) { id } }', (w) => ({ ids: [w.b.id, w.b.serialId] })) },
  // Policies are the vendor's templates: every signed-in role reads them; nothing of B is in them.
  policy: { expect: 'SCOPED', auditor: 'ALLOWED', run: call('query ($id: ID!) { policy(id: $id) { id name entitlements } }', (w) => ({ id: w.policyId })), scoped: noB },
  policies: { expect: 'SCOPED', auditor: 'ALLOWED', run: call('{ policies(first: 100) { edges { node { id name } } } }'), scoped: noB },
  serialByNumber: { expect: 'NOT_FOUND', auditor: 'ALLOWED', run: call('query ($n: String!) { serialByNumber(serialNumber: $n) { id } }', (w) => ({ n: w.b.serialNumber })) }
}

const mutations: Record<string, Row> = {
  createPolicy: { expect: 'FORBIDDEN', auditor: 'FORBIDDEN', run: call('mutation ($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', () => ({ i: { name: 'not allowed', maxDevices: 1 } })) },
  updatePolicy: { expect: 'FORBIDDEN', auditor: 'FORBIDDEN', run: call('mutation ($i: UpdatePolicyInput!) { updatePolicy(input: $i) { id } }', (w) => ({ i: { id: w.policyId, maxDevices: 99 } })) },
  heartbeat: { expect: 'PUBLIC', auditor: 'PUBLIC', run: call('mutation ($i: HeartbeatInput!) { heartbeat(input: $i) { code } }', (w) => ({ i: { serialNumber: w.b.serialNumber, deviceId: 'b-device' } })) },
  createClient: { expect: 'FORBIDDEN', auditor: 'FORBIDDEN', run: call('mutation ($i: CreateClientInput!) { createClient(input: $i) { id } }', () => ({ i: { clientNumber: `X-${Date.now()}`, name: 'x', contactEmail: 'x@example.com' } })) },
  updateClient: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: UpdateClientInput!) { updateClient(input: $i) { id } }', (w) => ({ i: { id: w.b.id, name: 'taken' } })) },
  suspendClient: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: SuspendClientInput!) { suspendClient(input: $i) { id } }', (w) => ({ i: { id: w.b.id } })) },
  reinstateClient: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: ReinstateClientInput!) { reinstateClient(input: $i) { id } }', (w) => ({ i: { id: w.b.id } })) },
  createSerial: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', (w) => ({ i: { clientId: w.b.id } })) },
  createSerials: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { count } }', (w) => ({ i: { clientId: w.b.id, count: 2 } })) },
  updateSerial: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: UpdateSerialInput!) { updateSerial(input: $i) { id } }', (w) => ({ i: { id: w.b.serialId, maxUsageCount: 9 } })) },
  suspendSerial: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id } }', (w) => ({ i: { id: w.b.serialId } })) },
  reinstateSerial: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: ReinstateSerialInput!) { reinstateSerial(input: $i) { id } }', (w) => ({ i: { id: w.b.serialId } })) },
  revokeSerial: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { id } }', (w) => ({ i: { id: w.b.serialId, reason: 'x' } })) },
  revealSerialNumber: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: RevealSerialNumberInput!) { revealSerialNumber(input: $i) }', (w) => ({ i: { id: w.b.serialId } })) },
  deactivateDevice: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: DeactivateDeviceInput!) { deactivateDevice(input: $i) { id } }', (w) => ({ i: { serialId: w.b.serialId, deviceId: w.b.deviceId } })) },
  createApiKey: { expect: 'FORBIDDEN', auditor: 'FORBIDDEN', run: call('mutation ($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }', (w) => ({ i: { name: 'x', role: 'MANAGER', clientId: w.b.id } })) },
  revokeApiKey: { expect: 'FORBIDDEN', auditor: 'FORBIDDEN', run: call('mutation ($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id } }', (w) => ({ i: { id: w.b.keyId } })) },
  createWebhook: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: CreateWebhookInput!) { createWebhook(input: $i) { secret } }', (w) => ({ i: { clientId: w.b.id, url: 'http://127.0.0.1:9/hook' } })) },
  enableWebhook: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: EnableWebhookInput!) { enableWebhook(input: $i) { id } }', (w) => ({ i: { id: w.b.webhookId } })) },
  deleteWebhook: { expect: 'NOT_FOUND', auditor: 'FORBIDDEN', run: call('mutation ($i: DeleteWebhookInput!) { deleteWebhook(input: $i) { id } }', (w) => ({ i: { id: w.b.webhookId } })) },
  issueToken: { expect: 'SCOPED', auditor: 'ALLOWED', run: call('mutation { issueToken(input: { ttlSeconds: 60 }) { token } }'), scoped: noB },
  // Public: the serial number is the credential; any caller (or none) gets the same answer.
  validateSerial: { expect: 'PUBLIC', auditor: 'PUBLIC', run: call('mutation ($i: ValidateSerialInput!) { validateSerial(input: $i) { code } }', (w) => ({ i: { serialNumber: w.b.serialNumber, deviceId: 'm-dev' } })) },
  recordUsage: { expect: 'PUBLIC', auditor: 'PUBLIC', run: call('mutation ($i: RecordUsageInput!) { recordUsage(input: $i) { code } }', (w) => ({ i: { serialNumber: w.b.serialNumber, deviceId: 'm-dev' } })) },
  releaseDevice: { expect: 'PUBLIC', auditor: 'PUBLIC', run: call('mutation ($i: ReleaseDeviceInput!) { releaseDevice(input: $i) { deviceId } }', (w) => ({ i: { serialNumber: w.b.serialNumber, deviceId: 'm-dev' } })) },
  issueLicenseCertificate: { expect: 'PUBLIC', auditor: 'PUBLIC', run: call('mutation ($i: IssueLicenseCertificateInput!) { issueLicenseCertificate(input: $i) { keyId } }', (w) => ({ i: { serialNumber: w.b.serialNumber, deviceId: 'm-dev' } })) }
}

const subscriptions: Record<string, { query: string }> = {
  serialChanged: { query: 'subscription ($c: ID) { serialChanged(clientId: $c) { type } }' },
  usageRecorded: { query: 'subscription ($c: ID) { usageRecorded(clientId: $c) { id } }' }
}

t.test('every root operation has a row in the isolation matrix', async (t) => {
  const app = await build(t, { background: false })
  const schema = app.graphqlSchema
  t.same(Object.keys(schema.getQueryType()!.getFields()).sort(), Object.keys(queries).sort(), 'queries')
  t.same(Object.keys(schema.getMutationType()!.getFields()).sort(), Object.keys(mutations).sort(), 'mutations')
  t.same(Object.keys(schema.getSubscriptionType()!.getFields()).sort(), Object.keys(subscriptions).sort(), 'subscriptions')
})

t.test('every root field declares authScopes unless it is public', async (t) => {
  const app = await build(t, { background: false })
  const schema = app.graphqlSchema
  // node/nodes: anonymous callers may fetch the public key; every other type checks the caller
  // itself (tenant rules per object, AUTHENTICATION_ERROR without a credential), as the rows show.
  const PUBLIC = new Set(['publicKey', 'licenseStatus', 'validateSerial', 'recordUsage', 'releaseDevice', 'issueLicenseCertificate', 'heartbeat', 'node', 'nodes'])
  for (const type of [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!]) {
    for (const [name, field] of Object.entries(type.getFields())) {
      const scopes = (field.extensions as { pothosOptions?: { authScopes?: unknown } }).pothosOptions?.authScopes
      t.equal(scopes === undefined, PUBLIC.has(name), `${type.name}.${name} ${PUBLIC.has(name) ? 'is public' : 'has authScopes'}`)
    }
  }
})

t.test('MANAGER of client A against client B, AUDITOR read-only', async (t) => {
  const app = await build(t, { background: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true', FEATURE_ADVANCED_ANALYTICS: 'true' } })
  const a = await createClient(app)
  const b = await createClient(app, { contactEmail: 'b-secret@example.com' })
  const sa = await createSerial(app, a.id)
  const sb = await createSerial(app, b.id, { maxUsageCount: 5 })
  const bKey = await gqlOk(app, 'mutation ($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } } }', { i: { name: 'b', role: 'MANAGER', clientId: b.id } })
  await gqlOk(app, 'mutation ($i: ValidateSerialInput!) { validateSerial(input: $i) { code } }', { i: { serialNumber: sb.serialNumber, deviceId: 'b-device', deviceInfo: { host: 'b' } } })
  const policy = await gqlOk(app, 'mutation ($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', { i: { name: 'Matrix', maxDevices: 2 } })
  const bHook = await gqlOk(app, 'mutation ($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } } }', { i: { clientId: b.id, url: 'http://127.0.0.1:9/b-hook' } })
  const w: World = {
    app,
    a: { id: a.id, serialId: sa.id, serialNumber: sa.serialNumber },
    b: { id: b.id, clientNumber: b.clientNumber, serialId: sb.id, serialNumber: sb.serialNumber, keyId: bKey.createApiKey.apiKey.id, deviceId: 'b-device', webhookId: bHook.createWebhook.webhook.id },
    manager: await createApiKey(app, 'MANAGER', a.id),
    auditor: await createApiKey(app, 'AUDITOR'),
    policyId: policy.createPolicy.id
  }

  const check = async (name: string, row: Row, token: string, expect: Expect | 'ALLOWED', who: string) => {
    const res = await row.run(w, token)
    const code = res.errors?.[0]?.extensions.code
    const label = `${who} ${name}`
    switch (expect) {
      case 'NOT_FOUND': case 'FORBIDDEN':
        t.equal(code, expect, `${label}: ${expect}`)
        break
      case 'SCOPED':
        t.equal(code, undefined, `${label}: answers`)
        t.doesNotThrow(() => row.scoped!(w, res), `${label}: nothing of client B`)
        break
      case 'PUBLIC': {
        const anonymous = await row.run(w, null as unknown as string)
        t.notOk(code === 'FORBIDDEN' || code === 'AUTHENTICATION_ERROR', `${label}: public`)
        t.equal(code, anonymous.errors?.[0]?.extensions.code, `${label}: same answer as an anonymous caller`)
        break
      }
      case 'ALLOWED':
        t.equal(code, undefined, `${label}: allowed`)
    }
  }

  // Read-only rows first, then the changing ones, so no mutation alters what a query sees.
  for (const [name, row] of Object.entries(queries)) {
    await check(name, row, w.manager, row.expect, 'MANAGER')
    await check(name, row, w.auditor, row.auditor, 'AUDITOR')
  }
  for (const [name, row] of Object.entries(mutations)) {
    await check(name, row, w.auditor, row.auditor, 'AUDITOR')
    await check(name, row, w.manager, row.expect, 'MANAGER')
  }

  // Client B is untouched by everything above.
  const after = await gqlOk(app, 'query ($id: ID!) { serial(id: $id) { status maxUsageCount client { name status } } }', { id: sb.id })
  t.same(after.serial, { status: 'ACTIVE', maxUsageCount: 5, client: { name: 'Test Client', status: 'ACTIVE' } })

  // Subscriptions: over a real WebSocket, B's client id answers NOT_FOUND.
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  for (const [name, sub] of Object.entries(subscriptions)) {
    const client = wsClient({ url: `ws://127.0.0.1:${address.port}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${w.manager}` }, retryAttempts: 0 })
    const error = await new Promise<unknown>((resolve) => {
      client.subscribe({ query: sub.query, variables: { c: b.id } }, {
        next: (value) => { if (value.errors) resolve(value.errors) },
        error: resolve,
        complete: () => resolve(null)
      })
    })
    t.match(JSON.stringify(error), /NOT_FOUND|not found/, `MANAGER ${name}(clientId: B): NOT_FOUND`)
    await client.dispose()
  }
})
