import { createPublicKey, verify } from 'node:crypto'
import t from 'tap'
import { verifyLicenseCertificate } from '../../src/domain/certificates/verify-license-certificate.ts'
import { build, createClient, createSerial, gql, gqlOk } from '../helper.ts'

const ISSUE = 'mutation ($input: IssueLicenseCertificateInput!) { issueLicenseCertificate(input: $input) { certificate algorithm keyId expiresAt } }'

function flip (text: string, index: number): string {
  const chars = [...text]
  const c = chars[index]!
  chars[index] = c === 'A' ? 'B' : 'A'
  return chars.join('')
}

for (const algorithm of ['RSA-PSS-4096', 'ED25519'] as const) {
  t.test(`${algorithm}: certificate verifies offline; any tampering fails`, async (t) => {
    const app = await build(t, { env: { SIGNING_ALGORITHM: algorithm } })
    const client = await createClient(app)
    const serial = await createSerial(app, client.id, { maxUsageCount: 2, isDemo: true })

    const key = await app.inject({ method: 'GET', url: '/api/v1/public-key' })
    t.equal(key.statusCode, 200)
    const publicKey = key.json() as { algorithm: string, keyId: string, pem: string, jwk: Record<string, string> }
    t.equal(publicKey.algorithm, algorithm)
    t.match(publicKey.jwk, { kid: publicKey.keyId, kty: algorithm === 'ED25519' ? 'OKP' : 'RSA' })
    const viaGraphql = await gqlOk(app, '{ publicKey { algorithm keyId pem } }', {}, null)
    t.same(viaGraphql.publicKey, { algorithm, keyId: publicKey.keyId, pem: publicKey.pem })
    t.same(createPublicKey({ key: publicKey.jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }), publicKey.pem, 'JWK and PEM are the same key')

    const issued = (await gqlOk(app, ISSUE, { input: { serialNumber: serial.serialNumber, deviceId: 'workstation-7', ttlDays: 10 } }, null)).issueLicenseCertificate
    t.equal(issued.algorithm, algorithm)
    t.equal(issued.keyId, publicKey.keyId)

    const ok = verifyLicenseCertificate(issued.certificate, publicKey.pem, { deviceId: 'workstation-7' })
    t.equal(ok.valid, true)
    if (ok.valid) {
      t.match(ok.payload, { v: 1, kid: publicKey.keyId, alg: algorithm, sub: serial.id, client: client.clientNumber, device: 'workstation-7', maxDevices: 2, demo: true })
      t.equal(ok.payload.exp - ok.payload.iat, 10 * 86400, 'ttlDays sets exp')
      t.equal(new Date(ok.payload.exp * 1000).toISOString(), issued.expiresAt)
    }

    const [payload, signature] = issued.certificate.split('.') as [string, string]
    for (const i of [0, Math.floor(payload.length / 2), payload.length - 2]) {
      t.match(verifyLicenseCertificate(`${flip(payload, i)}.${signature}`, publicKey.pem), { valid: false }, `payload byte ${i} flipped`)
    }
    for (const i of [0, Math.floor(signature.length / 2), signature.length - 2]) {
      t.match(verifyLicenseCertificate(`${payload}.${flip(signature, i)}`, publicKey.pem), { valid: false, reason: 'BAD_SIGNATURE' }, `signature byte ${i} flipped`)
    }
    t.match(verifyLicenseCertificate(issued.certificate, publicKey.pem, { deviceId: 'other-pc' }), { valid: false, reason: 'WRONG_DEVICE' })
    t.match(verifyLicenseCertificate(issued.certificate, publicKey.pem, { now: new Date(Date.now() + 11 * 86_400_000) }), { valid: false, reason: 'EXPIRED' })
    t.match(verifyLicenseCertificate('garbage', publicKey.pem), { valid: false, reason: 'MALFORMED' })

    // The signature is plain RSASSA-PSS / Ed25519 over the first part, as documented.
    const pem = createPublicKey(publicKey.pem)
    const raw = algorithm === 'ED25519'
      ? verify(null, Buffer.from(payload), pem, Buffer.from(signature, 'base64url'))
      : verify('sha256', Buffer.from(payload), { key: pem, padding: 6, saltLength: 32 }, Buffer.from(signature, 'base64url'))
    t.equal(raw, true)
  })
}

t.test('certificates are refused for invalid serials and capped by the serial expiry', async (t) => {
  const app = await build(t, { env: { SIGNING_ALGORITHM: 'ED25519' } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1, expiresAt: new Date(Date.now() + 2 * 86_400_000).toISOString() })
  const capped = (await gqlOk(app, ISSUE, { input: { serialNumber: serial.serialNumber, deviceId: 'a', ttlDays: 30 } }, null)).issueLicenseCertificate
  t.ok(Date.parse(capped.expiresAt) <= Date.now() + 2 * 86_400_000 + 1000, 'never beyond the serial expiry')

  const full = await gql(app, ISSUE, { input: { serialNumber: serial.serialNumber, deviceId: 'b' } }, null)
  t.match(full.errors?.[0]?.extensions, { code: 'FORBIDDEN' }, 'no free slot for a second device')
  const malformed = await gql(app, ISSUE, { input: { serialNumber: 'nope', deviceId: 'a' } }, null)
  t.match(malformed.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR' })
  const ttl = await gql(app, ISSUE, { input: { serialNumber: serial.serialNumber, deviceId: 'a', ttlDays: 0 } }, null)
  t.match(ttl.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'ttlDays' }] })
})
