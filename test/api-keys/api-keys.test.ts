import t from 'tap'
import { sql } from 'drizzle-orm'
import { queryRows } from '../../src/infra/database.ts'
import { build, createClient, gql, gqlOk } from '../helper.ts'

const CREATE = 'mutation ($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id role clientId prefix expiresAt lastUsedAt revokedAt } } }'
const ME = '{ me { id role clientId } }'

t.test('createApiKey returns the secret once; only an HMAC hash is stored', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const { createApiKey: created } = await gqlOk(app, CREATE, { i: { name: 'ops', role: 'MANAGER', clientId: client.id } })
  const match = /^srl_([0-9A-Z]{26})_([A-Za-z0-9_-]{43})$/.exec(created.secret)
  t.ok(match, 'format srl_<keyId>_<secret>')
  t.equal(`key_${match![1]}`, created.apiKey.id, 'key id is part of the secret')
  t.ok(Buffer.from(match![2]!, 'base64url').length * 8 >= 128, 'at least 128 random bits')
  t.equal(created.apiKey.prefix, created.secret.slice(0, 12))

  const rows = await queryRows<Record<string, unknown>>(app.deps.database.db, sql`select * from api_keys where id = ${created.apiKey.id}`)
  const stored = JSON.stringify(rows)
  t.notOk(stored.includes(match![2]!), 'the secret part is not stored')
  t.match(rows[0]!.secret_hash, /^[0-9a-f]{64}$/, 'HMAC-SHA256 hex')

  const list = await gqlOk(app, '{ apiKeys { id } }')
  t.notOk(JSON.stringify(list).includes(created.secret), 'apiKeys never shows the secret')

  const me = await gqlOk(app, ME, {}, created.secret)
  t.same(me.me, { id: created.apiKey.id, role: 'MANAGER', clientId: client.id })
  const viaHeader = await app.inject({ method: 'POST', url: '/graphql', headers: { 'x-api-key': created.secret }, payload: { query: ME } })
  t.equal(viaHeader.json().data.me.id, created.apiKey.id, 'x-api-key header works too')
})

t.test('wrong, tampered and unknown keys answer AUTHENTICATION_ERROR', async (t) => {
  const app = await build(t, { background: false })
  const { createApiKey: created } = await gqlOk(app, CREATE, { i: { name: 'a', role: 'AUDITOR' } })
  const last = created.secret.at(-1) === 'A' ? 'B' : 'A'
  for (const token of [created.secret.slice(0, -1) + last, 'srl_nope', 'x'.repeat(40)]) {
    const res = await gql(app, ME, {}, token)
    t.equal(res.status, 200, 'GraphQL over HTTP: 200 with the code in extensions')
    t.equal(res.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
  }
  const anonymous = await gql(app, ME, {}, null)
  t.equal(anonymous.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR', 'no credential on a protected field')
})

t.test('revokeApiKey stops the key at once (also after it was cached)', async (t) => {
  const app = await build(t, { background: false })
  const { createApiKey: created } = await gqlOk(app, CREATE, { i: { name: 'r', role: 'AUDITOR' } })
  await gqlOk(app, ME, {}, created.secret) // now cached
  const revoked = await gqlOk(app, 'mutation ($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id revokedAt } }', { i: { id: created.apiKey.id } })
  t.ok(revoked.revokeApiKey.revokedAt)
  const res = await gql(app, ME, {}, created.secret)
  t.equal(res.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
  const missing = await gql(app, 'mutation { revokeApiKey(input: { id: "key_missing" }) { id } }')
  t.equal(missing.errors?.[0]?.extensions.code, 'NOT_FOUND')
})

t.test('expiresAt: an expired key is refused; a past expiry is a validation error', async (t) => {
  const app = await build(t, { background: false })
  const past = await gql(app, CREATE, { i: { name: 'e', role: 'AUDITOR', expiresAt: '2001-01-01T00:00:00Z' } })
  t.equal(past.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  const { createApiKey: created } = await gqlOk(app, CREATE, { i: { name: 'e', role: 'AUDITOR', expiresAt: new Date(Date.now() + 3_600_000).toISOString() } })
  await gqlOk(app, ME, {}, created.secret)
  await app.deps.database.db.execute(sql`update api_keys set expires_at = now() - interval '1 second' where id = ${created.apiKey.id}`)
  await app.deps.cache.invalidate([`k:${(await queryRows<{ h: string }>(app.deps.database.db, sql`select secret_hash as h from api_keys where id = ${created.apiKey.id}`))[0]!.h}`])
  const res = await gql(app, ME, {}, created.secret)
  t.equal(res.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
})

t.test('lastUsedAt is written by the flush, not on every request', async (t) => {
  const app = await build(t, { background: false })
  const { createApiKey: created } = await gqlOk(app, CREATE, { i: { name: 'u', role: 'AUDITOR' } })
  await gqlOk(app, ME, {}, created.secret)
  const before = await queryRows<{ last_used_at: Date | null }>(app.deps.database.db, sql`select last_used_at from api_keys where id = ${created.apiKey.id}`)
  t.equal(before[0]!.last_used_at, null, 'no write on the request')
  await app.deps.services.apiKeys.flushLastUsed()
  const { apiKeys } = await gqlOk(app, '{ apiKeys { id lastUsedAt } }')
  t.ok(apiKeys.find((k: { id: string }) => k.id === created.apiKey.id).lastUsedAt, 'written by the flush')
})

t.test('roles: only ADMIN creates keys; MANAGER needs a client; MANAGER sees only its keys', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const noClient = await gql(app, CREATE, { i: { name: 'm', role: 'MANAGER' } })
  t.equal(noClient.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  const auditorWithClient = await gql(app, CREATE, { i: { name: 'm', role: 'AUDITOR', clientId: client.id } })
  t.equal(auditorWithClient.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  const unknownClient = await gql(app, CREATE, { i: { name: 'm', role: 'MANAGER', clientId: 'cli_missing' } })
  t.equal(unknownClient.errors?.[0]?.extensions.code, 'NOT_FOUND')
  const { createApiKey: manager } = await gqlOk(app, CREATE, { i: { name: 'm', role: 'MANAGER', clientId: client.id } })
  const { createApiKey: auditor } = await gqlOk(app, CREATE, { i: { name: 'a', role: 'AUDITOR' } })
  for (const token of [manager.secret, auditor.secret]) {
    const res = await gql(app, CREATE, { i: { name: 'x', role: 'ADMIN' } }, token)
    t.equal(res.errors?.[0]?.extensions.code, 'FORBIDDEN')
  }
  const own = await gqlOk(app, '{ apiKeys { id clientId } }', {}, manager.secret)
  t.ok(own.apiKeys.length >= 1)
  t.ok(own.apiKeys.every((k: { clientId: string }) => k.clientId === client.id))
})

t.test('ADMIN_API_KEY bootstrap key is an ADMIN, stored nowhere', async (t) => {
  const app = await build(t, { background: false })
  const me = await gqlOk(app, ME)
  t.same(me.me, { id: 'env:ADMIN_API_KEY', role: 'ADMIN', clientId: null })
})
