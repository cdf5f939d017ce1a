// @serials/client against the real service on a loopback port: signed validation, offline grace,
// checkout + verifyOffline, the signed revocation list (ETag / 304), heartbeats on a floating seat.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createLicenseClient, LicenseClientError, type FetchLike, type StorageLike } from '../../packages/client/src/index.ts'
import { build, createClient, createSerial, gqlOk } from '../helper.ts'

function memoryStorage (): StorageLike & { map: Map<string, string> } {
  const map = new Map<string, string>()
  return { map, getItem: (k) => map.get(k) ?? null, setItem: (k, v) => { map.set(k, v) }, removeItem: (k) => { map.delete(k) } }
}

/** The global fetch, with a switch that makes the network "go down" and a log of what was sent. */
function switchableFetch () {
  const state = { offline: false, log: [] as Array<{ url: string, method: string, status: number, headers: Record<string, string> }> }
  const fetchImpl: FetchLike = async (url, init) => {
    if (state.offline) throw new TypeError('fetch failed')
    const response = await fetch(url, init)
    state.log.push({ url, method: init.method, status: response.status, headers: init.headers })
    return response
  }
  return { state, fetch: fetchImpl }
}

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  return `http://127.0.0.1:${address.port}`
}

async function publicKeyOf (baseUrl: string): Promise<{ pem: string, jwk: { kty: string }, keyId: string }> {
  return await (await fetch(`${baseUrl}/api/v1/public-key`)).json() as { pem: string, jwk: { kty: string }, keyId: string }
}

for (const algorithm of ['RSA-PSS-4096', 'ED25519'] as const) {
  t.test(`${algorithm}: validate verifies the signed answer and serves it stale while offline`, async (t) => {
    const app = await build(t, { env: { SIGNING_ALGORITHM: algorithm } })
    const baseUrl = await listen(app)
    const key = await publicKeyOf(baseUrl)
    const client = await createClient(app)
    const serial = await createSerial(app, client.id, { maxUsageCount: 1 })
    const net = switchableFetch()
    const storage = memoryStorage()
    let clock = Date.now()
    const sdk = createLicenseClient({ baseUrl, publicKey: key.pem, deviceId: 'laptop-1', storage, fetch: net.fetch, now: () => clock, offlineGraceMs: 86_400_000 })

    const first = await sdk.validate(serial.serialNumber)
    t.match(first, { valid: true, code: 'VALID', stale: false, remainingDevices: 0, isDemo: false, entitlements: [] })
    t.ok(Math.abs(sdk.trustedTime() - Date.parse(first.serverTime)) === 0, 'serverTime of a signed answer becomes the trusted time')
    t.ok([...storage.map.keys()].every((k) => !k.includes(serial.serialNumber.replace(/-/g, ''))), 'storage keys never hold the serial number')

    // Every signed field filled in: an expiry, a demo, several free slots.
    const demo = await createSerial(app, client.id, { maxUsageCount: 3, isDemo: true, expiresAt: new Date(Date.now() + 5 * 86_400_000 + 123).toISOString() })
    const demoAnswer = await sdk.validate(demo.serialNumber.toLowerCase().replace(/-/g, ' '))
    t.match(demoAnswer, { valid: true, isDemo: true, remainingDevices: 2, stale: false })
    t.match(demoAnswer.expiresAt, /\.\d{3}Z$/)

    // The same key as JWK works too, and a second device finds the single slot taken.
    const other = createLicenseClient({ baseUrl, publicKey: key.jwk, deviceId: 'laptop-2', storage: memoryStorage(), fetch: net.fetch })
    t.match(await other.validate(serial.serialNumber), { valid: false, code: 'TOO_MANY_DEVICES', stale: false })

    net.state.offline = true
    clock += 3600_000
    t.match(await sdk.validate(serial.serialNumber), { valid: true, code: 'VALID', stale: true, serverTime: first.serverTime }, 'last verified answer, marked stale')
    await t.rejects(other.validate('7KQ2M-X9D4T-0BHRW-5N8CF-J3VPA'), { code: 'NETWORK_ERROR' }, 'nothing stored for that serial')

    // An edited stored answer is not believed.
    const [answerKey, stored] = [...storage.map.entries()].find(([k]) => k.includes(':answer:'))!
    storage.setItem(answerKey, stored.replace('"remainingDevices":0', '"remainingDevices":5'))
    await t.rejects(sdk.validate(serial.serialNumber), { code: 'NETWORK_ERROR' }, 'edited answer fails its signature')
    storage.setItem(answerKey, stored)

    clock += 86_400_000
    await t.rejects(sdk.validate(serial.serialNumber), { code: 'NETWORK_ERROR', message: /grace period/ }, 'past the grace period')

    clock = Date.parse(first.serverTime) - 10 * 60_000
    await t.rejects(sdk.validate(serial.serialNumber), { code: 'CLOCK_TAMPERED' }, 'clock set back while offline')
    net.state.offline = false
    clock = Date.now()
    t.match(await sdk.validate(serial.serialNumber), { valid: true, stale: false })
  })
}

t.test('checkout, verifyOffline and the signed revocation list', async (t) => {
  const app = await build(t, { env: { SIGNING_ALGORITHM: 'ED25519' } })
  const baseUrl = await listen(app)
  const key = await publicKeyOf(baseUrl)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 2 })
  const keep = await createSerial(app, client.id, { maxUsageCount: 2 })
  const net = switchableFetch()
  const storage = memoryStorage()
  const sdk = createLicenseClient({ baseUrl, publicKey: key.pem, deviceId: 'pc-1', storage, fetch: net.fetch })

  const certificate = await sdk.checkout(serial.serialNumber, 7)
  const kept = await sdk.checkout(keep.serialNumber, 7)
  const ok = await sdk.verifyOffline(certificate)
  t.match(ok, { valid: true, payload: { sub: serial.id, device: 'pc-1', client: client.clientNumber } })
  t.equal(ok.payload!.exp - ok.payload!.iat, 7 * 86400)
  t.ok(sdk.trustedTime() >= ok.payload!.iat * 1000, 'iat of a verified certificate is trusted time')

  // The service's own Node verifier and the SDK agree (one implementation).
  const { verifyLicenseCertificate } = await import('../../src/domain/certificates/verify-license-certificate.ts')
  t.match(verifyLicenseCertificate(certificate, key.pem, { deviceId: 'pc-1' }), { valid: true, payload: { sub: serial.id } })
  t.match(verifyLicenseCertificate(certificate, key.pem, { deviceId: 'pc-2' }), { valid: false, reason: 'WRONG_DEVICE' })

  const elsewhere = createLicenseClient({ baseUrl, publicKey: key.pem, deviceId: 'pc-2', storage: memoryStorage(), fetch: net.fetch })
  t.match(await elsewhere.verifyOffline(certificate), { valid: false, reason: 'WRONG_DEVICE' })

  const before = await sdk.fetchRevocations()
  t.notOk(before.serials.includes(serial.id))
  const again = await sdk.fetchRevocations()
  t.equal(again.token, before.token)
  const [first, second] = net.state.log.filter((r) => r.url.endsWith('/revocations')).slice(-2)
  t.equal(first!.status, 200)
  t.equal(second!.status, 304, 'If-None-Match with the stored ETag answers 304')
  t.ok(second!.headers['if-none-match'])

  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: serial.id, reason: 'refund' } })
  // The relay publishes serial.revoked after commit; the list follows it (no timing asserted).
  let list = await sdk.fetchRevocations()
  for (let i = 0; i < 200 && !list.serials.includes(serial.id); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    list = await sdk.fetchRevocations()
  }
  t.ok(list.serials.includes(serial.id), 'the revoked serial is listed')
  t.notOk(list.serials.includes(keep.id))
  t.match(await sdk.verifyOffline(certificate), { valid: false, reason: 'REVOKED' }, 'the stored list is applied')
  t.match(await sdk.verifyOffline(kept), { valid: true })
  t.match(await elsewhere.verifyOffline(certificate, { revocations: list.token }), { valid: false, reason: 'WRONG_DEVICE' })
  const fresh = createLicenseClient({ baseUrl, publicKey: key.pem, deviceId: 'pc-1', storage: memoryStorage(), fetch: net.fetch })
  t.match(await fresh.verifyOffline(certificate, { revocations: list }), { valid: false, reason: 'REVOKED' }, 'a list passed in is applied')

  const raw = await fetch(`${baseUrl}/api/v1/revocations`)
  t.equal(raw.status, 200)
  t.match(await raw.json(), { algorithm: 'ED25519', keyId: key.keyId, list: list.token })
  t.equal((await fetch(`${baseUrl}/api/v1/revocations`, { headers: { 'if-none-match': raw.headers.get('etag')! } })).status, 304)

  await t.rejects(sdk.checkout(serial.serialNumber, 7), { code: 'HTTP_ERROR', serverCode: 'FORBIDDEN' }, 'no certificate for a revoked serial')
  await t.rejects(sdk.checkout(keep.serialNumber, 0), { code: 'HTTP_ERROR', serverCode: 'VALIDATION_ERROR' }, 'ttlDays out of range')
})

t.test('heartbeats keep a floating seat and stop when it is gone', async (t) => {
  const app = await build(t, { env: { SIGNING_ALGORITHM: 'ED25519' } })
  const baseUrl = await listen(app)
  const key = await publicKeyOf(baseUrl)
  const policy = await gqlOk<{ createPolicy: { id: string } }>(app, 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }',
    { input: { name: 'floating', maxDevices: 1, floating: true, heartbeatSeconds: 60, heartbeatGraceSeconds: 0 } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { policyId: policy.createPolicy.id })
  const timers: Array<{ fn: () => void, ms: number }> = []
  const sdk = createLicenseClient({
    baseUrl,
    publicKey: key.pem,
    deviceId: 'seat-1',
    storage: memoryStorage(),
    heartbeats: { setTimeout: (fn, ms) => { timers.push({ fn, ms }); return timers.length }, clearTimeout: () => {}, random: () => 0.5 }
  })
  const validation = await sdk.validate(serial.serialNumber)
  t.match(validation, { valid: true, code: 'VALID' })
  t.ok(validation.leaseExpiresAt, 'a floating answer carries the lease')

  const beats: unknown[] = []
  const stops: unknown[] = []
  const stop = sdk.startHeartbeats(serial.serialNumber, { onBeat: (r) => beats.push(r), onStop: (r) => stops.push(r) })
  t.equal(timers[0]!.ms, 0, 'the first beat goes out at once')
  const fire = async () => {
    const n = beats.length + stops.length
    timers.at(-1)!.fn()
    for (let i = 0; i < 400 && beats.length + stops.length === n; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await fire()
  t.match(beats[0], { alive: true, code: 'VALID' })
  const interval = timers.at(-1)!.ms
  // Lease 60 s ahead, half of it, minus 10 % jitter × 0.5: about 28.5 s (the local and server clocks agree here).
  t.ok(interval > 20_000 && interval <= 30_000, `next beat after half the lease with jitter (${interval} ms)`)

  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: serial.id, reason: 'seat pulled' } })
  // Cache invalidation follows the revocation through the bus: beat until the service says so.
  for (let i = 0; i < 100 && stops.length === 0; i++) {
    await fire()
    if (stops.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.match(stops, [{ alive: false, code: 'REVOKED' }], 'alive: false stops the beats')
  const scheduled = timers.length
  stop()
  t.equal(timers.length, scheduled, 'nothing scheduled after alive: false')
})

t.test('errors are typed', async (t) => {
  t.throws(() => createLicenseClient({ baseUrl: '', publicKey: 'x', deviceId: 'a' }), LicenseClientError)
  t.throws(() => createLicenseClient({ baseUrl: 'http://x', publicKey: 'x', deviceId: '' }), { code: 'BAD_CONFIGURATION' })
  const sdk = createLicenseClient({ baseUrl: 'http://127.0.0.1:9', publicKey: 'not a key', deviceId: 'a', storage: memoryStorage() })
  await t.rejects(sdk.verifyOffline('a.b'), { code: 'BAD_CONFIGURATION' })
})
