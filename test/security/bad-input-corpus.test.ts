// A bad-input corpus over every public REST route and public GraphQL operation: malformed,
// oversized, deeply nested, wrongly typed and wrongly encoded input gets a 4xx in the contract
// format (or a normal answer), never a 5xx, and the service still answers /health afterwards.
// Hand-written cases first, then fast-check generates JSON shapes for each input.
import fc from 'fast-check'
import t from 'tap'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { build, createClient, createSerial } from '../helper.ts'

const CODES = ['VALIDATION_ERROR', 'AUTHENTICATION_ERROR', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'RATE_LIMITED', 'FEATURE_DISABLED']
const REST_POST = ['/api/v1/serials/validate', '/api/v1/serials/usage', '/api/v1/serials/release', '/api/v1/serials/heartbeat']
const REST_GET = ['/api/v1/public-key', '/api/v1/revocations', '/health', '/health/ready']
const PUBLIC_GRAPHQL: Record<string, string> = {
  validateSerial: 'mutation ($input: ValidateSerialInput!) { validateSerial(input: $input) { valid code } }',
  recordUsage: 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { recorded code } }',
  releaseDevice: 'mutation ($input: ReleaseDeviceInput!) { releaseDevice(input: $input) { id } }',
  issueLicenseCertificate: 'mutation ($input: IssueLicenseCertificateInput!) { issueLicenseCertificate(input: $input) { certificate } }',
  heartbeat: 'mutation ($input: HeartbeatInput!) { heartbeat(input: $input) { alive code } }',
  publicKey: 'query { publicKey { algorithm keyId } }'
}

// Each request from its own address, so the failed-lookup defence does not turn the rest of the
// corpus into 429s (which would hide the handlers from it).
let address = 0
const nextIp = () => { address++; return `10.${(address >> 16) & 255}.${(address >> 8) & 255}.${address & 255}` }

type Check = (name: string, res: LightMyRequestResponse) => void
let checked = 0

function restChecker (t: Tap): Check {
  return (name, res) => {
    checked++
    if (res.statusCode >= 500) t.fail(`${name}: ${res.statusCode} ${res.body.slice(0, 300)}`)
    if (res.statusCode < 400) return
    let body: any
    try { body = res.json() } catch { t.fail(`${name}: ${res.statusCode} body is not JSON: ${res.body.slice(0, 200)}`); return }
    const ok = body?.statusCode === res.statusCode && CODES.includes(body?.code) && typeof body?.message === 'string'
    if (!ok) t.fail(`${name}: not the contract format: ${res.body.slice(0, 300)}`)
  }
}

function graphqlChecker (t: Tap): Check {
  return (name, res) => {
    checked++
    if (res.statusCode >= 500) t.fail(`${name}: ${res.statusCode} ${res.body.slice(0, 300)}`)
    let body: any
    try { body = res.json() } catch { t.fail(`${name}: ${res.statusCode} body is not JSON: ${res.body.slice(0, 200)}`); return }
    if (res.statusCode >= 400 && !Array.isArray(body?.errors) && !CODES.includes(body?.code)) t.fail(`${name}: ${res.statusCode} without errors: ${res.body.slice(0, 300)}`)
    for (const error of body?.errors ?? []) {
      if (!CODES.includes(error?.extensions?.code)) t.fail(`${name}: error without a contract code: ${JSON.stringify(error).slice(0, 300)}`)
    }
  }
}

type Tap = { fail (message: string): void, pass (message: string): void, teardown (fn: () => unknown): void }

async function send (app: FastifyInstance, options: InjectOptions): Promise<LightMyRequestResponse> {
  return app.inject({ remoteAddress: nextIp(), ...options } as InjectOptions)
}

const deep = (levels: number) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels)

/** Raw bodies every JSON route must refuse or answer sanely. */
function malformedBodies (serialNumber: string): Array<[string, string | Buffer, string | undefined]> {
  const json = 'application/json'
  return [
    ['empty', '', json],
    ['truncated', '{"serialNumber":', json],
    ['not JSON', 'serialNumber=1&deviceId=2', json],
    ['null', 'null', json],
    ['array', '[]', json],
    ['string', '"x"', json],
    ['number', '42', json],
    ['true', 'true', json],
    ['trailing garbage', `{"serialNumber":"${serialNumber}","deviceId":"d"}xyz`, json],
    ['duplicate keys', `{"serialNumber":"${serialNumber}","serialNumber":1,"deviceId":"d"}`, json],
    ['__proto__', `{"serialNumber":"${serialNumber}","deviceId":"d","__proto__":{"admin":true}}`, json],
    ['constructor.prototype', `{"serialNumber":"${serialNumber}","deviceId":"d","constructor":{"prototype":{"x":1}}}`, json],
    ['5,000 levels', `{"serialNumber":"${serialNumber}","deviceId":"d","deviceInfo":${deep(5000)}}`, json],
    ['100,000 open brackets', '['.repeat(100_000), json],
    ['lone surrogate', '{"serialNumber":"\\ud800","deviceId":"\\udfff"}', json],
    ['NUL bytes', `{"serialNumber":"${serialNumber}\\u0000","deviceId":"d\\u0000"}`, json],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"serialNumber":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('","deviceId":"d"}')]), json],
    ['byte-order mark', `\uFEFF{"serialNumber":"${serialNumber}","deviceId":"d"}`, json],
    ['UTF-16 declared', `{"serialNumber":"${serialNumber}","deviceId":"d"}`, 'application/json; charset=utf-16'],
    ['2 MB string', `{"serialNumber":"${'7'.repeat(2 * 1024 * 1024)}","deviceId":"d"}`, json],
    ['text/plain', `{"serialNumber":"${serialNumber}","deviceId":"d"}`, 'text/plain'],
    ['form', 'serialNumber=x&deviceId=d', 'application/x-www-form-urlencoded'],
    ['multipart', '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--', 'multipart/form-data; boundary=b'],
    ['no content type', `{"serialNumber":"${serialNumber}","deviceId":"d"}`, undefined],
    ['garbage content type', '{}', ';;;/'],
    ['wrong types', '{"serialNumber":123,"deviceId":["d"],"deviceInfo":"x","quantity":"3","feature":{},"nonce":7}', json],
    ['huge numbers', `{"serialNumber":"${serialNumber}","deviceId":"d","quantity":1e308,"ttlDays":-1e308}`, json],
    ['float quantity', `{"serialNumber":"${serialNumber}","deviceId":"d","quantity":1.5}`, json],
    ['negative quantity', `{"serialNumber":"${serialNumber}","deviceId":"d","quantity":-5}`, json],
    ['long device id', `{"serialNumber":"${serialNumber}","deviceId":"${'d'.repeat(10_000)}"}`, json],
    ['RTL and emoji', `{"serialNumber":"\u202e${serialNumber}","deviceId":"\u{1F600}\u202e"}`, json]
  ]
}

t.test('hand-written bad input on every public REST route and GraphQL operation', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const rest = restChecker(t)
  const graphql = graphqlChecker(t)

  for (const url of REST_POST) {
    for (const [name, payload, type] of malformedBodies(serial.serialNumber)) {
      const headers: Record<string, string> = type ? { 'content-type': type } : {}
      rest(`${url} ${name}`, await send(app, { method: 'POST', url, payload, headers }))
    }
    for (const key of ['k'.repeat(3000), 'a\u0007b', 'ключ', ' ']) {
      rest(`${url} idempotency key ${key.length}`, await send(app, { method: 'POST', url, headers: { 'idempotency-key': key }, payload: { serialNumber: serial.serialNumber, deviceId: 'corpus' } }))
    }
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const) {
      rest(`${method} ${url}`, await send(app, { method, url }))
    }
    for (const variant of [`${url}%00`, `${url}%ff`, `${url}%`, `${url}%zz`, `${url}/..%2f..%2fhealth`, `${url}?${'q'.repeat(8000)}`, `${url.toUpperCase()}`]) {
      rest(`variant ${variant.slice(0, 60)}`, await send(app, { method: 'POST', url: variant, payload: { serialNumber: serial.serialNumber, deviceId: 'd' } }))
    }
  }
  for (const url of REST_GET) {
    rest(`GET ${url}`, await send(app, { method: 'GET', url }))
    rest(`GET ${url} with a body`, await send(app, { method: 'GET', url: `${url}?x=%ff&y=${'z'.repeat(4000)}`, headers: { 'content-type': 'application/json' } }))
    rest(`POST ${url}`, await send(app, { method: 'POST', url, payload: '{', headers: { 'content-type': 'application/json' } }))
  }

  const gqlBodies: Array<[string, string | Buffer, string]> = [
    ...malformedBodies(serial.serialNumber).filter(([, , type]) => type !== undefined).map(([name, payload, type]) => [name, payload, type!] as [string, string | Buffer, string]),
    ['query is a number', '{"query":42}', 'application/json'],
    ['query is an object', '{"query":{"a":1}}', 'application/json'],
    ['query is empty', '{"query":""}', 'application/json'],
    ['variables is a string', `{"query":${JSON.stringify(PUBLIC_GRAPHQL.validateSerial)},"variables":"x"}`, 'application/json'],
    ['variables is an array', `{"query":${JSON.stringify(PUBLIC_GRAPHQL.validateSerial)},"variables":[1]}`, 'application/json'],
    ['operationName is a number', `{"query":${JSON.stringify(PUBLIC_GRAPHQL.publicKey)},"operationName":5}`, 'application/json'],
    ['extensions is a string', `{"query":${JSON.stringify(PUBLIC_GRAPHQL.publicKey)},"extensions":"x"}`, 'application/json'],
    ['batched array', `[{"query":${JSON.stringify(PUBLIC_GRAPHQL.publicKey)}}]`, 'application/json'],
    ['syntax error', '{"query":"mutation { validateSerial(input: {"}', 'application/json'],
    ['unknown field', '{"query":"{ nope }"}', 'application/json'],
    ['unterminated string', '{"query":"{ publicKey(x: \\"abc) }"}', 'application/json'],
    ['5,000 nested selections', JSON.stringify({ query: `{ ${'publicKey { '.repeat(5000)}${'}'.repeat(5000)} }` }), 'application/json'],
    ['100,000-deep list literal', JSON.stringify({ query: `mutation { validateSerial(input: {serialNumber: "x", deviceId: "d", deviceInfo: ${'['.repeat(100_000)}${']'.repeat(100_000)}}) { code } }` }), 'application/json'],
    ['inline deviceInfo 3,000 deep', JSON.stringify({ query: `mutation { validateSerial(input: {serialNumber: "x", deviceId: "d", deviceInfo: ${'{a: '.repeat(3000)}1${'}'.repeat(3000)}}) { code } }` }), 'application/json'],
    ['application/graphql', 'mutation { validateSerial(input: {serialNumber: "x", deviceId: "d"}) { code } }', 'application/graphql']
  ]
  for (const [name, payload, type] of gqlBodies) {
    graphql(`/graphql ${name}`, await send(app, { method: 'POST', url: '/graphql', payload, headers: { 'content-type': type } }))
  }
  for (const query of Object.values(PUBLIC_GRAPHQL)) {
    graphql('GET /graphql', await send(app, { method: 'GET', url: `/graphql?query=${encodeURIComponent(query)}&variables=%7B` }))
  }

  t.ok(checked > 200, `${checked} requests checked`)
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, '/health still answers')
})

/** Field values of the wrong type, shape, size and encoding. */
const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('', ' ', '\u0000', '\ud800', '7KQ2M-X9D4T-0BHRW-5N8CF-J3VPA', 'x'.repeat(5000), '__proto__', '-1', '1e400'),
  fc.integer(), fc.double(), fc.boolean(), fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 5 })
)

const inputFields = ['serialNumber', 'deviceId', 'deviceInfo', 'nonce', 'quantity', 'feature', 'ttlDays', 'idempotencyKey']

/** An input object: the known field names with values of any type, plus stray keys. */
const inputShape = fc.oneof(
  fc.record(Object.fromEntries(inputFields.map((f) => [f, anyValue])), { requiredKeys: [] }),
  fc.dictionary(fc.string({ maxLength: 20 }), anyValue, { maxKeys: 8 }),
  anyValue
)

t.test('generated JSON shapes on every public REST route and GraphQL operation (fast-check)', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const rest = restChecker(t)
  const graphql = graphqlChecker(t)
  const withRealSerial = (input: unknown) => (input && typeof input === 'object' && !Array.isArray(input) && fc.sample(fc.boolean(), 1)[0])
    ? { ...input, serialNumber: serial.serialNumber }
    : input

  for (const url of REST_POST) {
    await fc.assert(fc.asyncProperty(inputShape, async (input) => {
      const res = await send(app, { method: 'POST', url, payload: JSON.stringify(withRealSerial(input)), headers: { 'content-type': 'application/json' } })
      rest(`${url} ${JSON.stringify(input).slice(0, 120)}`, res)
      return res.statusCode < 500
    }), { numRuns: 60 })
  }

  for (const [operation, query] of Object.entries(PUBLIC_GRAPHQL)) {
    await fc.assert(fc.asyncProperty(inputShape, fc.oneof(fc.constant(undefined), anyValue), async (input, extra) => {
      const body = { query, variables: { input: withRealSerial(input) }, ...(extra === undefined ? {} : { operationName: extra }) }
      const res = await send(app, { method: 'POST', url: '/graphql', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
      graphql(`${operation} ${JSON.stringify(body).slice(0, 160)}`, res)
      return res.statusCode < 500
    }), { numRuns: 40 })
  }

  // Whole bodies of any JSON shape, and arbitrary text.
  await fc.assert(fc.asyncProperty(fc.oneof(fc.jsonValue({ maxDepth: 8 }).map((v) => JSON.stringify(v)), fc.string({ unit: 'binary', maxLength: 500 })), fc.constantFrom(...REST_POST, '/graphql'), async (payload, url) => {
    const res = await send(app, { method: 'POST', url, payload, headers: { 'content-type': 'application/json' } })
    ;(url === '/graphql' ? graphql : rest)(`${url} raw ${payload.slice(0, 100)}`, res)
    return res.statusCode < 500
  }), { numRuns: 80 })

  t.ok(checked > 300, `${checked} requests checked so far`)
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, '/health still answers')
})
