import t from 'tap'
import { createHmac } from 'node:crypto'
import { build, createApiKey, createClient, gql, gqlOk } from '../helper.ts'

const ISSUE = 'mutation ($ttl: Int) { issueToken(input: { ttlSeconds: $ttl }) { token expiresAt } }'
const ME = '{ me { id role clientId } }'
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

t.test('issueToken exchanges an API key for a short-lived HS256 JWT with role and client', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const key = await createApiKey(app, 'MANAGER', client.id)
  const { issueToken } = await gqlOk(app, ISSUE, { ttl: 120 }, key)
  const [header, payload] = issueToken.token.split('.')
  t.equal(JSON.parse(Buffer.from(header, 'base64url').toString()).alg, 'HS256')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
  t.equal(claims.role, 'MANAGER')
  t.equal(claims.cid, client.id)
  const ttl = (new Date(issueToken.expiresAt).getTime() - Date.now()) / 1000
  t.ok(ttl > 100 && ttl <= 121, 'expires after ttlSeconds')
  const me = await gqlOk(app, ME, {}, issueToken.token)
  t.equal(me.me.role, 'MANAGER')
  t.equal(me.me.clientId, client.id)

  const audit = await gqlOk(app, '{ auditLog(first: 5, filter: { action: "api_key.token_issued" }) { edges { node { actorId } } } }')
  t.ok(audit.auditLog.edges.length >= 1, 'the exchange is audited')

  const again = await gql(app, ISSUE, { ttl: 120 }, issueToken.token)
  t.equal(again.errors?.[0]?.extensions.code, 'FORBIDDEN', 'a token does not mint tokens')
  for (const ttlSeconds of [10, 86_401]) {
    const bad = await gql(app, ISSUE, { ttl: ttlSeconds }, key)
    t.equal(bad.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', `ttl ${ttlSeconds} refused`)
  }
  const anonymous = await gql(app, ISSUE, { ttl: 120 }, null)
  t.equal(anonymous.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR')
})

t.test('expired, tampered, wrong-key and alg:none tokens answer AUTHENTICATION_ERROR', async (t) => {
  const app = await build(t, { background: false })
  const key = await createApiKey(app, 'AUDITOR')
  const { issueToken } = await gqlOk(app, ISSUE, { ttl: 120 }, key)
  const [h, p, s] = issueToken.token.split('.')
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString())

  const expired = app.jwt.sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 })
  const tampered = `${h}.${b64({ ...claims, role: 'ADMIN' })}.${s}`
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, role: 'ADMIN' })}.`
  const otherSecret = (() => {
    const head = b64({ alg: 'HS256', typ: 'JWT' })
    const body = b64({ ...claims, role: 'ADMIN' })
    return `${head}.${body}.${createHmac('sha256', 'another-secret-another-secret-xx').update(`${head}.${body}`).digest('base64url')}`
  })()
  const hs512 = (() => {
    const head = b64({ alg: 'HS512', typ: 'JWT' })
    const body = b64(claims)
    return `${head}.${body}.${createHmac('sha512', app.deps.config.jwtSecret).update(`${head}.${body}`).digest('base64url')}`
  })()
  for (const [name, token] of Object.entries({ expired, tampered, none, otherSecret, hs512 })) {
    const res = await gql(app, ME, {}, token)
    t.equal(res.status, 200, `${name}: 200 (GraphQL over HTTP), the code in extensions`)
    t.equal(res.errors?.[0]?.extensions.code, 'AUTHENTICATION_ERROR', `${name}: AUTHENTICATION_ERROR`)
  }
})
