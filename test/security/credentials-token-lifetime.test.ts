// A JWT is only as good as the API key it was issued from (issue 12, items 5 and 6): revoking the
// key ends its tokens on every instance, and a token must carry an exp within the issue bound.
import { createHmac } from 'node:crypto'
import t from 'tap'
import { ADMIN_KEY, build, buildPair, gql, gqlOk, realBackends, until } from '../helper.ts'

const CREATE = 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }'
const REVOKE = 'mutation ($id: ID!) { revokeApiKey(input: { id: $id }) { id } }'
const ISSUE = 'mutation ($ttl: Int) { issueToken(input: { ttlSeconds: $ttl }) { token } }'
const ME = '{ me { id role } }'
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

async function newKey (app: Parameters<typeof gqlOk>[0], role = 'AUDITOR'): Promise<{ id: string, secret: string }> {
  const { createApiKey } = await gqlOk(app, CREATE, { input: { name: 'lifetime', role } })
  return { id: createApiKey.apiKey.id, secret: createApiKey.secret }
}

async function meCode (app: Parameters<typeof gql>[0], token: string): Promise<string> {
  const res = await gql(app, ME, {}, token)
  return res.errors?.[0]?.extensions.code ?? (res.data?.me ? 'OK' : 'NO_DATA')
}

/** Signs claims with the app's own secret, as a holder of JWT_SECRET (or a bug) would. */
function sign (secret: string, claims: Record<string, unknown>): string {
  const head = b64({ alg: 'HS256', typ: 'JWT' })
  const body = b64(claims)
  return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`
}

t.test('revoking an API key revokes the JWTs issued from it; other keys\' tokens live on', async (t) => {
  const app = await build(t, { background: false })
  const key = await newKey(app)
  const bystander = await newKey(app)
  const tokens = await Promise.all([1, 2].map(async () => (await gqlOk(app, ISSUE, { ttl: 86_400 }, key.secret)).issueToken.token as string))
  const other = (await gqlOk(app, ISSUE, { ttl: 3600 }, bystander.secret)).issueToken.token as string
  for (const token of tokens) t.equal(await meCode(app, token), 'OK', 'valid before the revocation')
  t.equal(app.deps.services.apiKeys.revokedKeys.known(key.id), false, 'the check is answered from memory')

  await gqlOk(app, REVOKE, { id: key.id })
  for (const token of tokens) t.equal(await meCode(app, token), 'AUTHENTICATION_ERROR', 'refused at once after the revocation')
  t.equal(await meCode(app, key.secret), 'AUTHENTICATION_ERROR', 'the key itself too')
  t.equal(app.deps.services.apiKeys.revokedKeys.known(key.id), true)
  t.equal(await meCode(app, other), 'OK', 'a token of another key is untouched')
  const rest = await app.inject({ method: 'GET', url: '/api/v1/serials', headers: { authorization: `Bearer ${tokens[0]}` } })
  t.equal(rest.statusCode, 401, 'REST refuses it as well')
})

t.test('tokens issued from the env ADMIN_API_KEY live until their exp (it cannot be revoked)', async (t) => {
  const app = await build(t, { background: false })
  const { issueToken } = await gqlOk(app, ISSUE, { ttl: 600 }, ADMIN_KEY)
  t.equal(await meCode(app, issueToken.token), 'OK')
  t.equal((await app.authenticate(issueToken.token))?.keyId, null)
})

t.test('a token without exp, or with a lifetime beyond the issue bound, is refused', async (t) => {
  const app = await build(t, { background: false })
  const key = await newKey(app, 'ADMIN')
  const secret = app.deps.config.jwtSecret
  const now = Math.floor(Date.now() / 1000)
  const base = { sub: key.id, role: 'ADMIN', cid: null }
  const cases: Record<string, Record<string, unknown>> = {
    'no exp': { ...base, iat: now },
    'no exp, no iat': base,
    'exp as a string': { ...base, iat: now, exp: String(now + 600) },
    'exp - iat beyond 24 h': { ...base, iat: now - 10, exp: now + 86_400 },
    'exp a year away, no iat': { ...base, exp: now + 365 * 86_400 },
    'exp a year away, iat in the future': { ...base, iat: now + 364 * 86_400, exp: now + 365 * 86_400 }
  }
  for (const [name, claims] of Object.entries(cases)) {
    t.equal(await meCode(app, sign(secret, claims)), 'AUTHENTICATION_ERROR', name)
  }
  t.equal(await meCode(app, sign(secret, { ...base, iat: now, exp: now + 86_400 })), 'OK', 'the longest lifetime issueToken grants still works')
  t.equal(await meCode(app, sign(secret, { ...base, exp: now + 600 })), 'OK', 'a short exp without iat works')
  t.equal(await meCode(app, sign(secret, { ...base, sub: 'key_NOSUCHKEY0000000000000000', iat: now, exp: now + 600 })), 'AUTHENTICATION_ERROR', 'a token naming no stored key is refused')
})

t.test('a revocation on one instance ends the key\'s tokens on the other, also for an instance started later', {
  skip: realBackends ? false : 'needs TEST_DATABASE_URL and TEST_REDIS_URL (two instances)'
}, async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const key = await newKey(a)
  const { issueToken } = await gqlOk(a, ISSUE, { ttl: 3600 }, key.secret)
  t.equal(await meCode(b, issueToken.token), 'OK', 'B accepts the token (and caches the key as active)')
  t.equal(await meCode(b, key.secret), 'OK')
  await gqlOk(a, REVOKE, { id: key.id })
  await until(async () => await meCode(b, issueToken.token) === 'AUTHENTICATION_ERROR', 'B to refuse the token')
  t.equal(await meCode(b, key.secret), 'AUTHENTICATION_ERROR', 'and the key')
  t.pass('B refuses the token as soon as the revocation message arrives')
  const later = await build(t, { background: false, env: { REDIS_PREFIX: a.deps.config.redis!.prefix } })
  // Start-up waits for the bus's first heartbeat, so memory can answer from the first request.
  t.equal(later.deps.bus.healthy(), true, 'a new instance hears the bus once it is built')
  t.equal(later.deps.services.apiKeys.revokedKeys.known(key.id), true, 'a new instance loads revoked keys at start')
  t.equal(await meCode(later, issueToken.token), 'AUTHENTICATION_ERROR')
})
