// Interface #1: every Actor says which API key it stems from (keyId) and when it stops being valid
// (expiresAt), and app.onCredentialRevoked fires on every instance when a key is revoked.
import t from 'tap'
import { ANONYMOUS } from '../../src/kernel/access.ts'
import { ADMIN_KEY, build, buildPair, createClient, gqlOk, realBackends, until } from '../helper.ts'

const CREATE = 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id expiresAt } } }'
const REVOKE = 'mutation ($id: ID!) { revokeApiKey(input: { id: $id }) { id revokedAt } }'
const ISSUE = 'mutation ($ttl: Int) { issueToken(input: { ttlSeconds: $ttl }) { token expiresAt } }'

async function newKey (app: Parameters<typeof gqlOk>[0], input: Record<string, unknown>): Promise<{ id: string, secret: string, expiresAt: string | null }> {
  const { createApiKey } = await gqlOk(app, CREATE, { input: { name: 'actor test', ...input } })
  return { id: createApiKey.apiKey.id, secret: createApiKey.secret, expiresAt: createApiKey.apiKey.expiresAt }
}

t.test('Actor.keyId and Actor.expiresAt for API keys, JWTs, the env admin key and anonymous', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const expiresAt = new Date(Date.now() + 3_600_000)
  const expiring = await newKey(app, { role: 'MANAGER', clientId: client.id, expiresAt: expiresAt.toISOString() })
  const forever = await newKey(app, { role: 'AUDITOR' })

  const keyActor = await app.authenticate(expiring.secret)
  t.match(keyActor, { kind: 'apiKey', id: expiring.id, keyId: expiring.id, role: 'MANAGER', clientId: client.id })
  t.equal(keyActor?.expiresAt, new Date(expiring.expiresAt!).getTime(), 'an API key expires when the key does')
  t.match(await app.authenticate(forever.secret), { keyId: forever.id, expiresAt: null }, 'a key without expiry: null')

  const { issueToken } = await gqlOk(app, ISSUE, { ttl: 600 }, forever.secret)
  const jwtActor = await app.authenticate(issueToken.token)
  t.match(jwtActor, { kind: 'jwt', id: forever.id, keyId: forever.id, role: 'AUDITOR' }, 'a JWT names the key it was issued from')
  t.equal(jwtActor?.expiresAt, new Date(issueToken.expiresAt).getTime(), 'a JWT expires at its exp')

  t.match(await app.authenticate(ADMIN_KEY), { id: 'env:ADMIN_API_KEY', keyId: null, expiresAt: null }, 'the env admin key is no stored key')
  const adminToken = await gqlOk(app, ISSUE, { ttl: 600 }, ADMIN_KEY)
  t.match(await app.authenticate(adminToken.issueToken.token), { kind: 'jwt', keyId: null, expiresAt: new Date(adminToken.issueToken.expiresAt).getTime() })
  t.same({ keyId: ANONYMOUS.keyId, expiresAt: ANONYMOUS.expiresAt }, { keyId: null, expiresAt: null })
})

t.test('a token never outlives the key it was issued from', async (t) => {
  const app = await build(t, { background: false })
  const soon = new Date(Date.now() + 300_000)
  const key = await newKey(app, { role: 'AUDITOR', expiresAt: soon.toISOString() })
  const { issueToken } = await gqlOk(app, ISSUE, { ttl: 86_400 }, key.secret)
  t.ok(new Date(issueToken.expiresAt).getTime() <= soon.getTime(), 'exp capped at the key expiry')
  const actor = await app.authenticate(issueToken.token)
  t.ok(actor && actor.expiresAt! <= soon.getTime())
})

t.test('onCredentialRevoked fires once per revocation on the revoking instance, with the key id', async (t) => {
  const app = await build(t, { background: false })
  const key = await newKey(app, { role: 'AUDITOR' })
  const other = await newKey(app, { role: 'AUDITOR' })
  const heard: string[] = []
  const off = app.onCredentialRevoked((keyId) => heard.push(keyId))
  await gqlOk(app, REVOKE, { id: key.id })
  await gqlOk(app, REVOKE, { id: key.id })
  await until(() => heard.includes(key.id), 'the revocation signal')
  // Give a duplicate (the bus echo of our own publish) the chance to arrive before checking.
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(heard, [key.id], 'once, although revoked twice and echoed by the bus')
  off()
  await gqlOk(app, REVOKE, { id: other.id })
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(heard, [key.id], 'an unsubscribed listener hears nothing more')
})

t.test('onCredentialRevoked fires on every instance', { skip: realBackends ? false : 'needs TEST_DATABASE_URL and TEST_REDIS_URL (two instances)' }, async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const key = await newKey(a, { role: 'AUDITOR' })
  const onA: string[] = []
  const onB: string[] = []
  a.onCredentialRevoked((id) => onA.push(id))
  b.onCredentialRevoked((id) => onB.push(id))
  await gqlOk(a, REVOKE, { id: key.id })
  await until(() => onA.includes(key.id) && onB.includes(key.id), 'both instances to hear the revocation')
  t.same(onA, [key.id])
  t.same(onB, [key.id])
})
