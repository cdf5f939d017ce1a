// The documented check of a signed answer (README "Checking a signed answer") works, and a
// forged or replayed answer fails it.
import { createPublicKey, verify } from 'node:crypto'
import t from 'tap'
import { build, createClient, createSerial, gqlOk, restValidate, VALIDATE } from '../helper.ts'

function canonical (value: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(value).sort(([a], [b]) => a < b ? -1 : 1)))
}

function check (answer: Record<string, any>, deviceId: string, pem: string, algorithm: string): boolean {
  const message = canonical({
    code: answer.code,
    deviceId,
    entitlements: answer.entitlements ?? [],
    expiresAt: answer.expiresAt ?? null,
    isDemo: answer.isDemo ?? null,
    leaseExpiresAt: answer.leaseExpiresAt ?? null,
    nonce: answer.nonce ?? null,
    remainingDevices: answer.remainingDevices ?? null,
    serverTime: answer.serverTime,
    valid: answer.valid
  })
  const key = createPublicKey(pem)
  const signature = Buffer.from(answer.signature, 'base64url')
  return algorithm === 'ED25519'
    ? verify(null, Buffer.from(message), key, signature)
    : verify('sha256', Buffer.from(message), { key, padding: 6, saltLength: 32 }, signature)
}

for (const algorithm of ['RSA-PSS-4096', 'ED25519']) {
  t.test(`${algorithm}: a nonce makes a signed answer a client can check`, async (t) => {
    const app = await build(t, { env: { SIGNING_ALGORITHM: algorithm } })
    const { pem } = (await app.inject({ method: 'GET', url: '/api/v1/public-key' })).json()
    const client = await createClient(app)
    const serial = await createSerial(app, client.id, { maxUsageCount: 1 })

    const rest = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc', nonce: 'nonce-123' })
    t.match(rest.body, { valid: true, code: 'VALID', nonce: 'nonce-123', signature: String })
    t.equal(check(rest.body, 'pc', pem, algorithm), true, 'REST answer verifies')

    const viaGraphql = (await gqlOk(app, VALIDATE, { input: { serialNumber: serial.serialNumber, deviceId: 'pc', nonce: 'n-456' } }, null)).validateSerial
    t.equal(check(viaGraphql, 'pc', pem, algorithm), true, 'GraphQL answer verifies')

    const refused = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'other', nonce: 'n-789' })
    t.equal(refused.body.code, 'TOO_MANY_DEVICES')
    t.equal(check(refused.body, 'other', pem, algorithm), true, 'refusals are signed too')

    t.equal(check({ ...refused.body, valid: true, code: 'VALID' }, 'other', pem, algorithm), false, 'a forged "valid" fails')
    t.equal(check({ ...rest.body, nonce: 'fresh-nonce' }, 'pc', pem, algorithm), false, 'a replayed answer fails for a new nonce')
    t.equal(check(rest.body, 'another-device', pem, algorithm), false, 'bound to the device')

    const unsigned = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })
    t.notOk('signature' in unsigned.body, 'no nonce, no signature')
  })
}

t.test('entitlements and the lease are signed: a client cannot be talked into more features', async (t) => {
  const app = await build(t)
  const { pem, algorithm } = (await app.inject({ method: 'GET', url: '/api/v1/public-key' })).json()
  const policy = (await gqlOk(app, 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }',
    { input: { name: 'Signed floating', maxDevices: 1, floating: true, heartbeatSeconds: 60, entitlements: ['BASIC'] } })).createPolicy
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { policyId: policy.id })

  const answer = (await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc', nonce: 'n-ent' })).body
  t.match(answer, { valid: true, entitlements: ['BASIC'], leaseExpiresAt: String })
  t.equal(check(answer, 'pc', pem, algorithm), true, 'the answer with its entitlements verifies')
  t.equal(check({ ...answer, entitlements: ['BASIC', 'PRO'] }, 'pc', pem, algorithm), false, 'an added entitlement fails')
  t.equal(check({ ...answer, leaseExpiresAt: '2099-01-01T00:00:00.000Z' }, 'pc', pem, algorithm), false, 'a stretched lease fails')
})
