import t from 'tap'
import { randomBytes } from 'node:crypto'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { FAILED_LOOKUP_LIMIT } from '../../src/http/rate-limit.ts'
import { createClient as wsClient, type ExecutionResult } from 'graphql-ws'
import WebSocket from 'ws'
import { MAX_SUBSCRIPTIONS_PER_SOCKET } from '../../src/http/graphql/ws-server.ts'
import { ADMIN_KEY, build, createApiKey, createClient, createSerial, gql, realBackends, VALIDATE } from '../helper.ts'

/** A well-formed number (valid check character) that was never issued. */
const unknownSerial = async () => generateSerialNumber()

t.test('RATE_LIMIT per IP: 429 with Retry-After and the contract body, shared by two instances', async (t) => {
  const env = { REDIS_PREFIX: `rl${randomBytes(4).toString('hex')}`, RATE_LIMIT: '4' }
  const one = await build(t, { background: false, env })
  const two = await build(t, { background: false, env })
  // Two instances on one Redis share the counter; embedded they each count alone.
  const apps = realBackends ? [one, two, one, two] : [one, one, one, one]
  for (const app of apps) t.equal((await app.inject({ method: 'GET', url: '/api/v1/public-key' })).statusCode, 200)
  const res = await (realBackends ? two : one).inject({ method: 'GET', url: '/api/v1/public-key' })
  t.equal(res.statusCode, 429)
  t.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After in seconds')
  t.match(res.json(), { statusCode: 429, code: 'RATE_LIMITED' })
})

t.test('VALIDATE_RATE_LIMIT: one budget for REST validation and the public GraphQL mutations (aliases count)', async (t) => {
  const app = await build(t, { background: false, env: { VALIDATE_RATE_LIMIT: '4' } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const body = { serialNumber: serial.serialNumber, deviceId: 'd1' }
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: body })).statusCode, 200)
  // One document with three aliased validations uses three calls of the budget.
  const batch = 'mutation ($i: ValidateSerialInput!) { a: validateSerial(input: $i) { code } b: validateSerial(input: $i) { code } c: validateSerial(input: $i) { code } }'
  const first = await gql(app, batch, { i: body }, null)
  t.equal(first.errors, undefined)
  t.equal(first.data?.a.code, 'VALID')
  const second = await gql(app, VALIDATE, { input: body }, null)
  t.equal(second.status, 200, 'GraphQL over HTTP: 200 with the code in extensions')
  t.equal(second.errors?.[0]?.extensions.code, 'RATE_LIMITED')
  const rest = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: body })
  t.equal(rest.statusCode, 429, 'REST is refused too: the budget is shared')
  t.equal(rest.json().code, 'RATE_LIMITED')
  t.ok(Number(rest.headers['retry-after']) >= 1)
  // Authenticated, non-public operations are not charged to this budget.
  t.equal((await gql(app, '{ me { id } }')).errors, undefined)
})

t.test('VALIDATE_RATE_LIMIT on one REST route alone', async (t) => {
  const app = await build(t, { background: false, env: { VALIDATE_RATE_LIMIT: '3' } })
  const body = { serialNumber: generateSerialNumber(), deviceId: 'd1' }
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: body })).statusCode, 200)
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: body })
  t.equal(res.statusCode, 429)
  t.match(res.json(), { statusCode: 429, code: 'RATE_LIMITED' })
})

t.test('per-client quota (quotaPerMinute) for the client\'s own credentials, shared by two instances', async (t) => {
  const env = { REDIS_PREFIX: `q${randomBytes(4).toString('hex')}` }
  const one = await build(t, { background: false, env })
  const two = await build(t, { background: false, env })
  const client = await createClient(one, { quotaPerMinute: 3 })
  const key = await createApiKey(one, 'MANAGER', client.id)
  const apps = realBackends ? [one, two, one] : [one, one, one]
  for (const app of apps) t.equal((await gql(app, '{ me { id } }', {}, key)).errors, undefined)
  const over = await gql(realBackends ? two : one, '{ me { id } }', {}, key)
  t.equal(over.status, 200, 'GraphQL over HTTP: 200 with the code in extensions')
  t.equal(over.errors?.[0]?.extensions.code, 'RATE_LIMITED')
  // Another client's quota and the ADMIN are unaffected.
  const other = await createClient(one, { quotaPerMinute: 3 })
  t.equal((await gql(one, '{ me { id } }', {}, await createApiKey(one, 'MANAGER', other.id))).errors, undefined)
  t.equal((await gql(one, '{ me { id } }')).errors, undefined)
})

t.test('per-client quota over the GraphQL WebSocket: each operation on the socket counts', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app, { quotaPerMinute: 3 })
  const key = await createApiKey(app, 'MANAGER', client.id)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
  const socket = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${key}` }, retryAttempts: 0 })
  t.teardown(() => socket.dispose())
  const once = (query: string) => new Promise<ExecutionResult<any> | { thrown: any }>((resolve) => {
    let result: ExecutionResult<any> | undefined
    socket.subscribe({ query }, { next: (value) => { result = value as ExecutionResult<any> }, error: (error) => resolve({ thrown: error }), complete: () => resolve(result!) })
  })
  for (let i = 0; i < 3; i++) t.match(await once('{ me { id } }'), { data: { me: { id: String } } }, `operation ${i + 1} within the quota`)
  const over = await once('{ me { id } }') as { thrown: Array<{ extensions?: { code?: string } }> }
  t.equal(over.thrown?.[0]?.extensions?.code, 'RATE_LIMITED', 'the fourth operation on the same socket is refused')
  const subscription = await once('subscription { serialChanged { type } }') as { thrown: Array<{ extensions?: { code?: string } }> }
  t.equal(subscription.thrown?.[0]?.extensions?.code, 'RATE_LIMITED', 'a subscription counts too')
  const http = await gql(app, '{ me { id } }', {}, key)
  t.equal(http.errors?.[0]?.extensions.code, 'RATE_LIMITED', 'and the budget is the one HTTP spends')
})

t.test(`at most ${MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions per socket: the next one is RATE_LIMITED`, async (t) => {
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
  const socket = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
  t.teardown(() => socket.dispose())
  const stops: Array<() => void> = []
  let refused: Promise<unknown> | undefined
  for (let i = 0; i <= MAX_SUBSCRIPTIONS_PER_SOCKET; i++) {
    const outcome = new Promise((resolve) => {
      stops.push(socket.subscribe({ query: 'subscription { serialChanged { type } }' }, { next: () => {}, error: resolve, complete: () => resolve('complete') }))
    })
    if (i === MAX_SUBSCRIPTIONS_PER_SOCKET) refused = outcome
  }
  const errors = await refused as Array<{ extensions?: { code?: string } }>
  t.equal(errors?.[0]?.extensions?.code, 'RATE_LIMITED')
  for (const stop of stops) stop()
})

t.test(`failed-lookup throttling: ${FAILED_LOOKUP_LIMIT} NOT_FOUND answers per minute, then RATE_LIMITED`, async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const known = await createSerial(app, client.id)
  for (let i = 0; i < FAILED_LOOKUP_LIMIT / 2; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: await unknownSerial(), deviceId: 'd' } })
    t.equal(res.json().code, 'NOT_FOUND')
  }
  for (let i = 0; i < FAILED_LOOKUP_LIMIT / 2; i++) {
    const res = await gql(app, VALIDATE, { input: { serialNumber: await unknownSerial(), deviceId: 'd' } }, null)
    t.equal(res.data?.validateSerial.code, 'NOT_FOUND')
  }
  // Known serial numbers from the same address are refused now too: the address is throttled.
  const rest = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: known.serialNumber, deviceId: 'd' } })
  t.equal(rest.statusCode, 429)
  t.ok(Number(rest.headers['retry-after']) >= 1)
  const graph = await gql(app, VALIDATE, { input: { serialNumber: known.serialNumber, deviceId: 'd' } }, null)
  t.equal(graph.errors?.[0]?.extensions.code, 'RATE_LIMITED')
  // Staff calls are not public lookups and stay open.
  t.equal((await gql(app, '{ me { id } }')).errors, undefined)
})

t.test('valid lookups never trip the failed-lookup throttle', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  for (let i = 0; i < FAILED_LOOKUP_LIMIT + 5; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: serial.serialNumber, deviceId: 'd' } })
    if (res.statusCode !== 200) { t.fail(`request ${i} answered ${res.statusCode}`); break }
  }
  t.pass('no throttling')
})
