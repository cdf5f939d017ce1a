// GET /api/v1/revocations: which serials the list holds, its signature, and an ETag every instance agrees on.
import { createPublicKey, verify } from 'node:crypto'
import { inArray, sql } from 'drizzle-orm'
import t from 'tap'
import { serials } from '../../schema/index.ts'
import { buildPair, createClient, createSerial, gqlOk } from '../helper.ts'

const REVOKE = 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }'

t.test('the list holds revoked serials that may still have a live certificate, signed, with a shared ETag', async (t) => {
  const [a, b] = await buildPair(t, { env: { SIGNING_ALGORITHM: 'ED25519' } })
  const client = await createClient(a)
  const recent = await createSerial(a, client.id)
  const old = await createSerial(a, client.id)
  const expired = await createSerial(a, client.id, { expiresAt: new Date(Date.now() + 86_400_000).toISOString() })
  const active = await createSerial(a, client.id)
  for (const s of [recent, old, expired]) await gqlOk(a, REVOKE, { input: { id: s.id, reason: 'test' } })
  // Revoked longer ago than any certificate lives, and a serial whose expiry (which caps every certificate) has passed.
  await a.deps.database.db.update(serials).set({ revokedAt: sql`now() - interval '400 days'` }).where(inArray(serials.id, [old.id]))
  await a.deps.database.db.update(serials).set({ expiresAt: sql`now() - interval '1 minute'` }).where(inArray(serials.id, [expired.id]))

  const res = await a.inject({ method: 'GET', url: '/api/v1/revocations' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['cache-control'], /must-revalidate/)
  const body = res.json() as { list: string, algorithm: string, keyId: string, issuedAt: string, expiresAt: string }
  const [head, signature] = body.list.split('.') as [string, string]
  const payload = JSON.parse(Buffer.from(head, 'base64url').toString()) as { v: number, kid: string, alg: string, iat: number, exp: number, serials: string[] }
  t.ok(payload.serials.includes(recent.id), 'recently revoked')
  t.notOk(payload.serials.includes(old.id), 'revoked more than 365 days ago')
  t.notOk(payload.serials.includes(expired.id), 'expired serial')
  t.notOk(payload.serials.includes(active.id), 'not revoked')
  t.match(payload, { v: 1, kid: body.keyId, alg: 'ED25519' })
  t.equal(payload.exp - payload.iat, 86400)
  t.equal(new Date(payload.iat * 1000).toISOString(), body.issuedAt)
  const key = (await a.inject({ method: 'GET', url: '/api/v1/public-key' })).json() as { pem: string }
  t.ok(verify(null, Buffer.from(head, 'ascii'), createPublicKey(key.pem), Buffer.from(signature, 'base64url')), 'signed like a certificate')

  const etag = res.headers.etag as string
  t.match(etag, /^"[A-Za-z0-9_-]+"$/)
  for (const app of [a, b]) {
    // The other instance may need the revocation events first; the ETag then agrees.
    let other = await app.inject({ method: 'GET', url: '/api/v1/revocations', headers: { 'if-none-match': etag } })
    for (let i = 0; i < 100 && other.statusCode !== 304; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      other = await app.inject({ method: 'GET', url: '/api/v1/revocations', headers: { 'if-none-match': etag } })
    }
    t.equal(other.statusCode, 304, 'same content, same ETag on every instance')
    t.equal(other.body, '')
  }
  const miss = await a.inject({ method: 'GET', url: '/api/v1/revocations', headers: { 'if-none-match': '"other"' } })
  t.equal(miss.statusCode, 200)

  // A new revocation changes the ETag.
  await gqlOk(a, REVOKE, { input: { id: active.id, reason: 'test' } })
  let after = await a.inject({ method: 'GET', url: '/api/v1/revocations', headers: { 'if-none-match': etag } })
  for (let i = 0; i < 100 && after.statusCode === 304; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    after = await a.inject({ method: 'GET', url: '/api/v1/revocations', headers: { 'if-none-match': etag } })
  }
  t.equal(after.statusCode, 200)
  t.not(after.headers.etag, etag)
  const list = JSON.parse(Buffer.from((after.json() as { list: string }).list.split('.')[0]!, 'base64url').toString()) as { serials: string[] }
  t.ok(list.serials.includes(active.id))
})
