// @serials/client against a forged service (a fake fetch): answers signed by another key, replayed
// nonces, certificates for another device, tampered and rolled-back revocation lists, a clock set
// back, and heartbeat back-off. No app is started: the fake signs with keys made here.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import t from 'tap'
import { createLicenseClient, type FetchLike, type LicenseClientOptions, type StorageLike } from '../../packages/client/src/index.ts'
import { answerSigningInput } from '../../packages/client/src/verify.ts'

const genuine = generateKeyPairSync('ed25519')
const attacker = generateKeyPairSync('ed25519')
const pem = genuine.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()

const b64u = (data: string | Buffer) => Buffer.from(data).toString('base64url')
function signWith (key: KeyObject, data: Buffer | Uint8Array): Buffer {
  return key.asymmetricKeyType === 'ed25519' ? sign(null, data, key) : sign('sha256', data, { key, padding: 6, saltLength: 32 })
}
function compact (payload: Record<string, unknown>, key: KeyObject = genuine.privateKey): string {
  const head = b64u(JSON.stringify(payload))
  return `${head}.${b64u(signWith(key, Buffer.from(head, 'ascii')))}`
}
const nowS = () => Math.floor(Date.now() / 1000)
function certificate (fields: Record<string, unknown> = {}, key: KeyObject = genuine.privateKey): string {
  return compact({ v: 1, kid: 'k', alg: 'ED25519', sub: 'ser_1', client: 'ACME', device: 'pc-1', maxDevices: 1, demo: false, iat: nowS() - 60, exp: nowS() + 86400, ent: ['PRO'], pol: null, ...fields }, key)
}
function revocations (serials: string[], fields: Record<string, unknown> = {}, key: KeyObject = genuine.privateKey): string {
  return compact({ v: 1, kid: 'k', alg: 'ED25519', iat: nowS() - 30, exp: nowS() + 86400, serials, ...fields }, key)
}

function memoryStorage (): StorageLike {
  const map = new Map<string, string>()
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => { map.set(k, v) }, removeItem: (k) => { map.delete(k) } }
}

type Handler = (path: string, body: any, headers: Record<string, string>) => { status: number, body?: unknown, headers?: Record<string, string> }
function fakeFetch (handler: Handler): FetchLike {
  return async (url, init) => {
    const answer = handler(new URL(url).pathname, init.body ? JSON.parse(init.body) : undefined, init.headers)
    const headers = new Map(Object.entries(answer.headers ?? {}))
    return { status: answer.status, headers: { get: (name) => headers.get(name.toLowerCase()) ?? null }, text: async () => answer.body === undefined ? '' : JSON.stringify(answer.body) }
  }
}

function answerFor (body: { nonce: string }, deviceId: string, key: KeyObject = genuine.privateKey, fields: Record<string, unknown> = {}) {
  const answer = { valid: true, code: 'VALID', message: 'ok', expiresAt: null, remainingDevices: 0, isDemo: false, serverTime: new Date().toISOString(), nonce: body.nonce, entitlements: [], leaseExpiresAt: null, ...fields }
  return { ...answer, signature: b64u(signWith(key, answerSigningInput(answer as any, deviceId))) }
}

function client (handler: Handler, extra: Partial<LicenseClientOptions> = {}) {
  return createLicenseClient({ baseUrl: 'https://licenses.example', publicKey: pem, deviceId: 'pc-1', storage: memoryStorage(), fetch: fakeFetch(handler), ...extra })
}

t.test('validate accepts only answers signed by the configured key for this nonce and device', async (t) => {
  t.match(await client((_p, body) => ({ status: 200, body: answerFor(body, 'pc-1') })).validate('S'), { valid: true, stale: false }, 'genuine answer')

  await t.rejects(client((_p, body) => ({ status: 200, body: answerFor(body, 'pc-1', attacker.privateKey) })).validate('S'), { code: 'BAD_SIGNATURE' }, 'signed by another key')
  await t.rejects(client((_p, body) => ({ status: 200, body: answerFor(body, 'pc-2') })).validate('S'), { code: 'BAD_SIGNATURE' }, 'signed for another device')
  await t.rejects(client((_p, body) => ({ status: 200, body: { ...answerFor(body, 'pc-1'), signature: undefined } })).validate('S'), { code: 'BAD_SIGNATURE' }, 'unsigned')
  await t.rejects(client((_p, body) => ({ status: 200, body: { ...answerFor(body, 'pc-1', genuine.privateKey, { valid: false, code: 'REVOKED' }), valid: true, code: 'VALID' } })).validate('S'), { code: 'BAD_SIGNATURE' }, 'REVOKED turned into VALID')
  await t.rejects(client((_p, body) => ({ status: 200, body: { ...answerFor(body, 'pc-1'), signature: answerFor(body, 'pc-1').signature + '=' } })).validate('S'), { code: 'BAD_SIGNATURE' }, 'padded signature')
  await t.rejects(client(() => ({ status: 200, body: { hello: 'world' } })).validate('S'), { code: 'BAD_RESPONSE' })

  // Replay: the forger captured a genuine VALID answer earlier and sends it back for every request.
  let captured: unknown
  const recorder = client((_p, body) => ({ status: 200, body: (captured ??= answerFor(body, 'pc-1')) }))
  t.match(await recorder.validate('S'), { valid: true })
  await t.rejects(recorder.validate('S'), { code: 'NONCE_MISMATCH' }, 'a replayed answer is refused')

  const nonces = new Set<string>()
  const fresh = client((_p, body) => { nonces.add(body.nonce); return { status: 200, body: answerFor(body, 'pc-1') } })
  for (let i = 0; i < 20; i++) await fresh.validate('S')
  t.equal(nonces.size, 20, 'a fresh nonce per call')
  t.ok([...nonces].every((n) => /^[A-Za-z0-9_-]{24}$/.test(n)))

  await t.rejects(client(() => ({ status: 400, body: { statusCode: 400, code: 'VALIDATION_ERROR', message: 'Validation failed' } })).validate('S'), { code: 'HTTP_ERROR', status: 400, serverCode: 'VALIDATION_ERROR' })
})

t.test('a forged answer never becomes the stored answer', async (t) => {
  const storage = memoryStorage()
  let mode: 'genuine' | 'forged' | 'down' = 'genuine'
  const sdk = client((_p, body) => {
    if (mode === 'down') return { status: 503, body: { statusCode: 503, code: 'INTERNAL', message: 'down' } }
    return { status: 200, body: mode === 'genuine' ? answerFor(body, 'pc-1', genuine.privateKey, { valid: false, code: 'SUSPENDED' }) : answerFor(body, 'pc-1', attacker.privateKey) }
  }, { storage })
  t.match(await sdk.validate('S'), { valid: false, code: 'SUSPENDED' })
  mode = 'forged'
  await t.rejects(sdk.validate('S'), { code: 'BAD_SIGNATURE' })
  mode = 'down'
  t.match(await sdk.validate('S'), { valid: false, code: 'SUSPENDED', stale: true }, 'the last verified answer, not the forged one')
})

t.test('verifyOffline: signature, device, alg and expiry', async (t) => {
  const sdk = client(() => ({ status: 500 }))
  const good = certificate()
  t.match(await sdk.verifyOffline(good), { valid: true, payload: { sub: 'ser_1', ent: ['PRO'], pol: null } }, 'unknown payload fields pass through')
  t.match(await sdk.verifyOffline(certificate({ device: 'pc-2' })), { valid: false, reason: 'WRONG_DEVICE' }, 'a certificate for another device')
  t.match(await sdk.verifyOffline(certificate({}, attacker.privateKey)), { valid: false, reason: 'BAD_SIGNATURE' }, 'signed by another key')
  t.match(await sdk.verifyOffline(certificate({ alg: 'RSA-PSS-4096' })), { valid: false, reason: 'BAD_SIGNATURE' }, 'the key decides the algorithm, not the payload')
  t.match(await sdk.verifyOffline(certificate({ exp: nowS() - 1 })), { valid: false, reason: 'EXPIRED' })
  t.match(await sdk.verifyOffline(certificate({ iat: undefined })), { valid: false, reason: 'MALFORMED' })
  t.match(await sdk.verifyOffline('nonsense'), { valid: false, reason: 'MALFORMED' })

  const rsaClient = client(() => ({ status: 500 }), { publicKey: rsaPem })
  t.match(await rsaClient.verifyOffline(certificate({ alg: 'RSA-PSS-4096' }, rsa.privateKey)), { valid: true }, 'RSA-PSS keys work too')
  t.match(await rsaClient.verifyOffline(good), { valid: false, reason: 'BAD_SIGNATURE' })
})

t.test('checkout refuses a certificate that does not verify here', async (t) => {
  const serve = (cert: string): Handler => () => ({ status: 200, body: { data: { issueLicenseCertificate: { certificate: cert } } } })
  const good = certificate()
  t.equal(await client(serve(good)).checkout('S', 7), good, 'a genuine certificate comes back')
  await t.rejects(client(serve(certificate({ device: 'pc-2' }))).checkout('S', 7), { code: 'BAD_RESPONSE', message: /WRONG_DEVICE/ }, 'for another device')
  await t.rejects(client(serve(certificate({}, attacker.privateKey))).checkout('S', 7), { code: 'BAD_SIGNATURE' })
  await t.rejects(client(() => ({ status: 200, body: { data: null, errors: [{ message: 'certificate refused: serial is REVOKED for this device', extensions: { code: 'FORBIDDEN', statusCode: 403 } }] } })).checkout('S', 7),
    { code: 'HTTP_ERROR', serverCode: 'FORBIDDEN', status: 403 })
})

t.test('revocation lists: tampered, foreign and rolled-back lists are refused', async (t) => {
  const listed = revocations(['ser_1', 'ser_9'])
  const [head, signature] = listed.split('.') as [string, string]
  const payload = JSON.parse(Buffer.from(head, 'base64url').toString()) as { serials: string[] }
  const tampered = `${b64u(JSON.stringify({ ...payload, serials: ['ser_9'] }))}.${signature}`
  const cert = certificate()

  let served = listed
  const requests: Array<Record<string, string>> = []
  const storage = memoryStorage()
  const sdk = client((path, _b, headers) => {
    requests.push(headers)
    if (headers['if-none-match'] === '"v1"' && served === listed) return { status: 304, headers: { etag: '"v1"' } }
    return { status: 200, body: { list: served }, headers: { etag: served === listed ? '"v1"' : '"v2"' } }
  }, { storage })

  t.match(await sdk.fetchRevocations(), { serials: ['ser_1', 'ser_9'] })
  t.match(await sdk.fetchRevocations(), { serials: ['ser_1', 'ser_9'] }, '304 keeps the stored list')
  t.equal(requests[1]!['if-none-match'], '"v1"')
  t.match(await sdk.verifyOffline(cert), { valid: false, reason: 'REVOKED' })

  served = tampered
  await t.rejects(sdk.fetchRevocations(), { code: 'BAD_SIGNATURE' }, 'a list with an entry removed')
  served = revocations([], {}, attacker.privateKey)
  await t.rejects(sdk.fetchRevocations(), { code: 'BAD_SIGNATURE' }, 'a list signed by another key')
  t.match(await sdk.verifyOffline(cert), { valid: false, reason: 'REVOKED' }, 'the stored list still applies')

  // An older genuine list (before ser_1 was revoked) does not replace the newer one.
  served = revocations([], { iat: nowS() - 7200 })
  t.match(await sdk.fetchRevocations(), { serials: [] })
  t.match(await sdk.verifyOffline(cert), { valid: false, reason: 'REVOKED' }, 'no roll-back to an older list')

  const fresh = client(() => ({ status: 500 }))
  t.match(await fresh.verifyOffline(cert, { revocations: tampered }), { valid: false, reason: 'BAD_SIGNATURE', message: /revocation list/ }, 'a tampered list passed in is refused, not ignored')
  t.match(await fresh.verifyOffline(cert, { revocations: revocations(['ser_2']) }), { valid: true })
  t.match(await fresh.verifyOffline(cert, { revocations: revocations(['ser_1'], { exp: nowS() - 10 }) }), { valid: false, reason: 'REVOKED' }, 'revocation is final: an expired list still revokes')
})

t.test('clock tamper: the local clock may not go behind trusted time', async (t) => {
  let clock = Date.now()
  const sdk = client((_p, body) => ({ status: 200, body: answerFor(body, 'pc-1') }), { now: () => clock })
  const cert = certificate({ exp: nowS() + 86400 })
  await sdk.validate('S')
  const trusted = sdk.trustedTime()
  t.ok(trusted > 0)
  clock = trusted - 4 * 60_000
  t.match(await sdk.verifyOffline(cert), { valid: true }, 'within 5 minutes: clocks differ')
  clock = trusted - 6 * 60_000
  t.match(await sdk.verifyOffline(cert), { valid: false, reason: 'CLOCK_TAMPERED' }, 'more than 5 minutes behind')
  t.match(await sdk.verifyOffline(certificate({}, attacker.privateKey)), { valid: false, reason: 'CLOCK_TAMPERED' }, 'before any other check')

  // Trusted time from a certificate's iat alone.
  let clock2 = Date.now()
  const other = client(() => ({ status: 500 }), { now: () => clock2 })
  t.match(await other.verifyOffline(certificate({ iat: nowS() + 3600, exp: nowS() + 7200 })), { valid: false, reason: 'CLOCK_TAMPERED' }, 'issued an hour after the local time')
  t.ok(other.trustedTime() >= (nowS() + 3600) * 1000 - 1000)
  clock2 = Date.now() + 2 * 3600_000
  t.match(await other.verifyOffline(cert), { valid: true }, 'clock moved forward again: no tamper')
  // ...and from a revocation list's iat.
  const third = client(() => ({ status: 500 }), { now: () => Date.now() })
  t.match(await third.verifyOffline(cert, { revocations: revocations([], { iat: nowS() + 3600 }) }), { valid: false, reason: 'CLOCK_TAMPERED' }, 'a list issued an hour after the local time')
})

t.test('heartbeats: interval from the lease, back-off on errors, Retry-After, stop on alive: false', async (t) => {
  const timers: number[] = []
  let pending: (() => void) | undefined
  const script: Array<{ status: number, body?: unknown, headers?: Record<string, string> }> = []
  const lease = () => new Date(Date.now() + 100_000).toISOString()
  const sdk = client(() => script.shift() ?? { status: 500 }, {
    heartbeats: { setTimeout: (fn, ms) => { timers.push(ms); pending = fn; return timers.length }, clearTimeout: () => { pending = undefined }, random: () => 1, jitter: 0.2, maxBackoffMs: 8000 }
  })
  const events: string[] = []
  const errors: number[] = []
  sdk.startHeartbeats('S', {
    onBeat: (r) => events.push(`beat ${r.code}`),
    onError: (e, retry) => { events.push(`error ${e.code}`); errors.push(retry) },
    onStop: (r) => events.push(`stop ${r.code}`)
  })
  const step = async () => {
    const fn = pending!
    pending = undefined
    const n = events.length
    fn()
    for (let i = 0; i < 200 && events.length === n; i++) await new Promise((resolve) => setImmediate(resolve))
  }
  script.push({ status: 200, body: { alive: true, code: 'VALID', leaseExpiresAt: lease() } })
  for (let i = 0; i < 5; i++) script.push({ status: 503 })
  script.push({ status: 429, headers: { 'retry-after': '30' }, body: { code: 'RATE_LIMITED' } })
  script.push({ status: 200, body: { alive: true, code: 'VALID', leaseExpiresAt: null } })
  script.push({ status: 200, body: { alive: false, code: 'SUSPENDED', leaseExpiresAt: null } })
  for (let i = 0; i < 9; i++) await step()

  t.same(events, ['beat VALID', 'error HTTP_ERROR', 'error HTTP_ERROR', 'error HTTP_ERROR', 'error HTTP_ERROR', 'error HTTP_ERROR', 'error RATE_LIMITED', 'beat VALID', 'stop SUSPENDED'])
  t.equal(timers[0], 0)
  t.ok(timers[1]! > 35_000 && timers[1]! <= 40_000, `half the lease less 20 % jitter (${timers[1]})`)
  t.same(errors.slice(0, 5), [800, 1600, 3200, 6400, 6400], 'exponential back-off with jitter, capped')
  t.equal(errors[5], 30_000, 'Retry-After wins when longer')
  t.equal(timers.at(-1), 12 * 60_000, 'no lease: the default interval less jitter')
  t.equal(pending, undefined, 'nothing scheduled after alive: false')
})
