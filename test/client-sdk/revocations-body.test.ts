// verifyOffline(certificate, {revocations}) takes the revocation list in the forms an app holds:
// the body of GET /api/v1/revocations as it comes (the object, or its JSON text), the bare compact
// `list`, or what fetchRevocations() returned. Only the signed `list` counts.
import t from 'tap'
import { createLicenseClient, type StorageLike } from '../../packages/client/src/index.ts'
import { build, createClient, createSerial, gqlOk } from '../helper.ts'

function memoryStorage (): StorageLike {
  const map = new Map<string, string>()
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => { map.set(k, v) }, removeItem: (k) => { map.delete(k) } }
}

t.test('the endpoint\'s real body, fed straight into verifyOffline, revokes', async (t) => {
  const app = await build(t, { env: { SIGNING_ALGORITHM: 'ED25519' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const baseUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const key = await (await fetch(`${baseUrl}/api/v1/public-key`)).json() as { pem: string }
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const issuer = createLicenseClient({ baseUrl, publicKey: key.pem, deviceId: 'pc-1', storage: memoryStorage() })
  const certificate = await issuer.checkout(serial.serialNumber, 7)
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: serial.id, reason: 'refund' } })

  // The body as any app would fetch it, once the list carries the revocation.
  let text = ''
  for (let i = 0; i < 200; i++) {
    text = await (await fetch(`${baseUrl}/api/v1/revocations`)).text()
    const list = (JSON.parse(text) as { list: string }).list
    if ((JSON.parse(Buffer.from(list.split('.')[0]!, 'base64url').toString()) as { serials: string[] }).serials.includes(serial.id)) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const body = JSON.parse(text) as { list: string, algorithm: string, keyId: string, issuedAt: string, expiresAt: string }
  t.match(body, { list: String, algorithm: 'ED25519', keyId: String, issuedAt: String, expiresAt: String }, 'the contract\'s body')

  // A fresh client each time (nothing stored), so the list passed in is what decides.
  const fresh = () => createLicenseClient({ baseUrl, publicKey: key.pem, deviceId: 'pc-1', storage: memoryStorage() })
  t.match(await fresh().verifyOffline(certificate), { valid: true }, 'no list: valid')
  t.match(await fresh().verifyOffline(certificate, { revocations: body }), { valid: false, reason: 'REVOKED' }, 'the body object')
  t.match(await fresh().verifyOffline(certificate, { revocations: text }), { valid: false, reason: 'REVOKED' }, 'the body\'s JSON text')
  t.match(await fresh().verifyOffline(certificate, { revocations: ` \n${text}` }), { valid: false, reason: 'REVOKED' }, 'the JSON text with leading whitespace')
  t.match(await fresh().verifyOffline(certificate, { revocations: body.list }), { valid: false, reason: 'REVOKED' }, 'the bare compact list')
  const fetched = await fresh().fetchRevocations()
  t.match(await fresh().verifyOffline(certificate, { revocations: fetched }), { valid: false, reason: 'REVOKED' }, 'what fetchRevocations() returned')

  // The descriptive fields are never trusted; a body whose list does not verify is refused, not ignored.
  const [head, signature] = body.list.split('.') as [string, string]
  const emptied = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(head, 'base64url').toString()), serials: [] })).toString('base64url')
  t.match(await fresh().verifyOffline(certificate, { revocations: { ...body, list: `${emptied}.${signature}` } }), { valid: false, reason: 'BAD_SIGNATURE' }, 'a doctored list in the body')
  t.match(await fresh().verifyOffline(certificate, { revocations: JSON.stringify({ ...body, list: `${emptied}.${signature}` }) }), { valid: false, reason: 'BAD_SIGNATURE' }, 'and in the JSON text')
  t.match(await fresh().verifyOffline(certificate, { revocations: { algorithm: 'ED25519' } as never }), { valid: false, reason: 'MALFORMED' }, 'a body without a list')
  t.match(await fresh().verifyOffline(certificate, { revocations: '{"list": ' }), { valid: false, reason: 'MALFORMED' }, 'broken JSON text')
})
