// Policies and entitlements: who may write them, what serials inherit, where entitlements show
// (validation REST + GraphQL, Serial, certificates), and updatePolicy reaching every instance.
import t from 'tap'
import { sql } from 'drizzle-orm'
import { queryRows } from '../../src/infra/database.ts'
import { build, buildPair, createApiKey, createClient, createSerial, gql, gqlOk, restValidate } from '../helper.ts'

const POLICY_FIELDS = 'id name maxDevices durationDays floating heartbeatSeconds heartbeatGraceSeconds maxActivationsPerDay offlineTtlDays entitlements createdAt updatedAt'
const CREATE_POLICY = `mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { ${POLICY_FIELDS} } }`
const UPDATE_POLICY = `mutation ($input: UpdatePolicyInput!) { updatePolicy(input: $input) { ${POLICY_FIELDS} } }`
const VALIDATE = 'mutation ($input: ValidateSerialInput!) { validateSerial(input: $input) { valid code entitlements leaseExpiresAt } }'

t.test('ADMIN creates a policy; entitlements are stored upper-case; every role reads, only ADMIN writes', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const { createPolicy: policy } = await gqlOk(app, CREATE_POLICY, { input: { name: 'Pro', maxDevices: 3, durationDays: 365, entitlements: ['export.pdf', 'SYNC', 'sync', 'ai_assist-2'] } })
  t.match(policy.id, /^pol_/)
  t.same(policy.entitlements, ['AI_ASSIST-2', 'EXPORT.PDF', 'SYNC'], 'upper-cased, de-duplicated')
  t.equal(policy.floating, false)
  t.equal(policy.heartbeatSeconds, 600)
  t.equal(policy.maxActivationsPerDay, null)

  const manager = await createApiKey(app, 'MANAGER', client.id)
  const auditor = await createApiKey(app, 'AUDITOR')
  for (const key of [manager, auditor]) {
    const denied = await gql(app, CREATE_POLICY, { input: { name: 'X', maxDevices: 1 } }, key)
    t.equal(denied.errors?.[0]?.extensions.code, 'FORBIDDEN')
    const read = await gqlOk(app, 'query ($id: ID!) { policy(id: $id) { id entitlements } }', { id: policy.id }, key)
    t.equal(read.policy.id, policy.id)
    const list = await gqlOk(app, 'query { policies(first: 100) { edges { node { id } } } }', {}, key)
    t.ok(list.policies.edges.some((e: any) => e.node.id === policy.id))
  }
  const anonymous = await gql(app, 'query ($id: ID!) { policy(id: $id) { id } }', { id: policy.id }, null)
  t.equal(anonymous.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
  const missing = await gql(app, 'query { policy(id: "pol_0000000000000000000000000") { id } }')
  t.equal(missing.errors?.[0]?.extensions.code, 'NOT_FOUND')
})

t.test('bad policy input is a VALIDATION_ERROR', async (t) => {
  const app = await build(t)
  const bad = [
    { name: 'A', maxDevices: 1, entitlements: ['has space'] },
    { name: 'A', maxDevices: 1, entitlements: ['x'.repeat(65)] },
    { name: 'A', maxDevices: 1, entitlements: [''] },
    { name: 'A', maxDevices: 1, heartbeatSeconds: 4 },
    { name: 'A', maxDevices: 1, heartbeatSeconds: 86_401 },
    { name: 'A', maxDevices: 1, heartbeatGraceSeconds: -1 },
    { name: 'A', maxDevices: 0 },
    { name: '', maxDevices: 1 }
  ]
  for (const input of bad) {
    const res = await gql(app, CREATE_POLICY, { input })
    t.equal(res.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', JSON.stringify(input))
  }
  const edge = await gqlOk(app, CREATE_POLICY, { input: { name: 'Edge', maxDevices: 1, floating: true, heartbeatSeconds: 5, heartbeatGraceSeconds: 0, entitlements: ['A'.repeat(64)] } })
  t.equal(edge.createPolicy.heartbeatSeconds, 5)
})

t.test('a serial created with policyId inherits limit, expiry and entitlements unless the input sets them', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const { createPolicy: policy } = await gqlOk(app, CREATE_POLICY, { input: { name: 'Pro', maxDevices: 3, durationDays: 30, entitlements: ['EXPORT', 'SYNC'] } })
  const before = Date.now()
  const inherited = await createSerial(app, client.id, { policyId: policy.id })
  const own = await createSerial(app, client.id, { policyId: policy.id, maxUsageCount: 7, expiresAt: new Date(Date.now() + 86_400_000).toISOString() })
  const plain = await createSerial(app, client.id)
  const q = 'query ($id: ID!) { serial(id: $id) { maxUsageCount expiresAt entitlements policy { id name } } }'
  const a = (await gqlOk(app, q, { id: inherited.id })).serial
  t.equal(a.maxUsageCount, 3)
  const expiry = new Date(a.expiresAt).getTime()
  t.ok(expiry >= before + 30 * 86_400_000 - 1000 && expiry <= Date.now() + 30 * 86_400_000 + 1000, 'expires durationDays after creation')
  t.same(a.entitlements, ['EXPORT', 'SYNC'])
  t.same(a.policy, { id: policy.id, name: 'Pro' })
  const b = (await gqlOk(app, q, { id: own.id })).serial
  t.equal(b.maxUsageCount, 7)
  t.ok(new Date(b.expiresAt).getTime() < Date.now() + 2 * 86_400_000)
  const c = (await gqlOk(app, q, { id: plain.id })).serial
  t.same(c, { maxUsageCount: 1, expiresAt: null, entitlements: [], policy: null }, 'no policy: as before')

  const unknown = await gql(app, 'mutation ($input: CreateSerialInput!) { createSerial(input: $input) { serialNumber } }', { input: { clientId: client.id, policyId: 'pol_nope' } })
  t.equal(unknown.errors?.[0]?.extensions.code, 'NOT_FOUND')
  const many = await gqlOk(app, 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { serials { serial { maxUsageCount policy { id } entitlements } } } }', { input: { clientId: client.id, policyId: policy.id, count: 3 } })
  t.same(many.createSerials.serials.map((s: any) => s.serial), Array(3).fill({ maxUsageCount: 3, policy: { id: policy.id }, entitlements: ['EXPORT', 'SYNC'] }))
})

t.test('entitlements and leaseExpiresAt in the validation answer (GraphQL and REST)', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const { createPolicy: policy } = await gqlOk(app, CREATE_POLICY, { input: { name: 'Pro', maxDevices: 2, entitlements: ['EXPORT'] } })
  const serial = await createSerial(app, client.id, { policyId: policy.id })
  const gqlAnswer = (await gqlOk(app, VALIDATE, { input: { serialNumber: serial.serialNumber, deviceId: 'pc-1' } }, null)).validateSerial
  t.same(gqlAnswer, { valid: true, code: 'VALID', entitlements: ['EXPORT'], leaseExpiresAt: null })
  const rest = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc-1' })
  t.equal(rest.status, 200)
  t.same(rest.body.entitlements, ['EXPORT'])
  t.equal(rest.body.leaseExpiresAt, null)

  const plain = await createSerial(app, client.id)
  const none = await restValidate(app, { serialNumber: plain.serialNumber, deviceId: 'pc-1' })
  t.same(none.body.entitlements, [], 'no policy: no entitlements')
  const refused = await restValidate(app, { serialNumber: plain.serialNumber, deviceId: 'pc-2' })
  t.equal(refused.body.code, 'TOO_MANY_DEVICES')
  t.same(refused.body.entitlements, [])
})

t.test('updatePolicy reaches every serial of the policy on every instance at once', async (t) => {
  const [a, b] = await buildPair(t)
  const client = await createClient(a)
  const { createPolicy: policy } = await gqlOk(a, CREATE_POLICY, { input: { name: 'Team', maxDevices: 1, durationDays: 100, entitlements: ['BASIC'] } })
  const inherited = await createSerial(a, client.id, { policyId: policy.id })
  const own = await createSerial(a, client.id, { policyId: policy.id, maxUsageCount: 1 })
  // Warm both instances' caches.
  for (const app of [a, b]) {
    t.same((await restValidate(app, { serialNumber: inherited.serialNumber, deviceId: 'pc-1' })).body.entitlements, ['BASIC'])
    t.equal((await restValidate(app, { serialNumber: inherited.serialNumber, deviceId: 'pc-2' })).body.code, 'TOO_MANY_DEVICES')
  }
  const updated = (await gqlOk(b, UPDATE_POLICY, { input: { id: policy.id, maxDevices: 3, durationDays: null, entitlements: ['basic', 'pro'] } })).updatePolicy
  t.same(updated.entitlements, ['BASIC', 'PRO'])
  t.equal(updated.durationDays, null)
  t.equal(updated.name, 'Team', 'absent fields stay')
  for (const app of [b, a]) {
    const deviceId = `pc-${app === a ? 2 : 3}`
    let r = (await restValidate(app, { serialNumber: inherited.serialNumber, deviceId })).body
    // The instance that made the change dropped its own copies before answering; the other hears
    // the invalidation over the bus (Redis pub/sub), a few milliseconds later: wait for it, bounded.
    const deadline = Date.now() + 2000
    while (app === a && (r.code !== 'VALID' || r.entitlements.length !== 2) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      r = (await restValidate(app, { serialNumber: inherited.serialNumber, deviceId })).body
    }
    t.equal(r.code, 'VALID', 'the new device limit applies at once')
    t.same(r.entitlements, ['BASIC', 'PRO'], 'the new entitlements apply at once')
    t.equal(r.expiresAt, null, 'the new duration applies at once')
  }
  const ownRow = (await gqlOk(a, 'query ($id: ID!) { serial(id: $id) { maxDevices expiresAt } }', { id: own.id })).serial
  t.equal(ownRow.maxDevices, 1, 'a serial\'s own limit is kept')

  const manager = await createApiKey(a, 'MANAGER', client.id)
  const denied = await gql(a, UPDATE_POLICY, { input: { id: policy.id, maxDevices: 9 } }, manager)
  t.equal(denied.errors?.[0]?.extensions.code, 'FORBIDDEN')
  const [event] = await queryRows<{ n: number }>(a.deps.database.db, sql`select count(*)::int as n from outbox where type in ('policy.created', 'policy.updated') and aggregate_id = ${policy.id}`)
  t.equal(Number(event?.n), 2, 'policy.created and policy.updated in the outbox')
})

t.test('certificates carry ent and pol, and ttlDays is capped by offlineTtlDays', async (t) => {
  const app = await build(t, { env: { SIGNING_ALGORITHM: 'ED25519' } })
  const client = await createClient(app)
  const { createPolicy: policy } = await gqlOk(app, CREATE_POLICY, { input: { name: 'Offline', maxDevices: 1, offlineTtlDays: 3, entitlements: ['EXPORT'] } })
  const serial = await createSerial(app, client.id, { policyId: policy.id })
  const issue = 'mutation ($input: IssueLicenseCertificateInput!) { issueLicenseCertificate(input: $input) { certificate expiresAt } }'
  const cert = (await gqlOk(app, issue, { input: { serialNumber: serial.serialNumber, deviceId: 'pc', ttlDays: 30 } }, null)).issueLicenseCertificate
  const payload = JSON.parse(Buffer.from(cert.certificate.split('.')[0], 'base64url').toString())
  t.same(payload.ent, ['EXPORT'])
  t.equal(payload.pol, policy.id)
  t.ok(payload.exp - payload.iat <= 3 * 86_400, 'capped at 3 days')
  const plain = await createSerial(app, client.id)
  const other = (await gqlOk(app, issue, { input: { serialNumber: plain.serialNumber, deviceId: 'pc', ttlDays: 30 } }, null)).issueLicenseCertificate
  const p2 = JSON.parse(Buffer.from(other.certificate.split('.')[0], 'base64url').toString())
  t.same([p2.ent, p2.pol], [[], null])
  t.equal(p2.exp - p2.iat, 30 * 86_400)
})

t.test('serialByNumber: normalised, tenant rules, audited', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const other = await createClient(app)
  const serial = await createSerial(app, client.id)
  const q = 'query ($n: String!) { serialByNumber(serialNumber: $n) { id maskedNumber } }'
  const sloppy = serial.serialNumber.toLowerCase().replaceAll('-', ' ')
  t.equal((await gqlOk(app, q, { n: sloppy })).serialByNumber.id, serial.id)
  const own = await createApiKey(app, 'MANAGER', client.id)
  t.equal((await gqlOk(app, q, { n: serial.serialNumber }, own)).serialByNumber.id, serial.id)
  const foreign = await createApiKey(app, 'MANAGER', other.id)
  t.equal((await gql(app, q, { n: serial.serialNumber }, foreign)).errors?.[0]?.extensions.code, 'NOT_FOUND')
  t.equal((await gql(app, q, { n: 'not a serial' })).errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.equal((await gql(app, q, { n: serial.serialNumber }, null)).errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
  const [audit] = await queryRows<{ n: number }>(app.deps.database.db, sql`select count(*)::int as n from audit_log where action = 'serial.looked_up' and target_id = ${serial.id}`)
  t.equal(Number(audit?.n), 2, 'each successful look-up audited')
})
