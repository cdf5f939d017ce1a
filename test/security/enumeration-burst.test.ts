// The failed-lookup defence (FAILED_LOOKUP_LIMIT NOT_FOUND answers per address per minute) holds
// for every public operation, whatever the transport, the selection or the concurrency: every
// not-found answer counts (GraphQL errors included), and a burst sent at once gets at most the
// limit answered NOT_FOUND, on one instance and on two sharing Redis. Legitimate bursts still pass.
import { once } from 'node:events'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { FAILED_LOOKUP_LIMIT } from '../../src/http/rate-limit.ts'
import { loadConfig } from '../../src/config/config.ts'
import { ADMIN_KEY, build, buildPair, createClient, createSerial, realBackends, TEST_DATA_DIR, until } from '../helper.ts'

const BURST = 120

/** The public GraphQL operations; those without a `code` in their answer say NOT_FOUND as an error. */
const OPS: Record<string, string> = {
  validateSerial: 'mutation ($n: String!) { validateSerial(input: { serialNumber: $n, deviceId: "d" }) { code } }',
  recordUsage: 'mutation ($n: String!) { recordUsage(input: { serialNumber: $n, deviceId: "d" }) { code } }',
  heartbeat: 'mutation ($n: String!) { heartbeat(input: { serialNumber: $n, deviceId: "d" }) { code } }',
  releaseDevice: 'mutation ($n: String!) { releaseDevice(input: { serialNumber: $n, deviceId: "d" }) { id } }',
  licenseStatus: 'query ($n: String!) { licenseStatus(serialNumber: $n) { status } }',
  issueLicenseCertificate: 'mutation ($n: String!) { issueLicenseCertificate(input: { serialNumber: $n, deviceId: "d" }) { certificate } }'
}
const REST = ['validate', 'usage', 'release', 'heartbeat']

interface Body { data?: Record<string, { code?: string } | null> | null, errors?: Array<{ extensions?: { code?: string, retryAfter?: number } }> }

/** What a GraphQL answer amounts to: RATE_LIMITED, NOT_FOUND (as data or as an error), or another code. */
function outcome (body: Body): string {
  const codes = (body.errors ?? []).map((e) => e.extensions?.code)
  if (codes.includes('RATE_LIMITED')) return 'RATE_LIMITED'
  if (codes.includes('NOT_FOUND')) return 'NOT_FOUND'
  for (const value of Object.values(body.data ?? {})) if (value?.code) return value.code
  return codes[0] ?? 'OK'
}

async function gqlFrom (app: FastifyInstance, ip: string, query: string, variables: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url: '/graphql', remoteAddress: ip, payload: { query, variables } })
  return { outcome: outcome(res.json() as Body), retryAfter: Number(res.headers['retry-after']) }
}

async function restFrom (app: FastifyInstance, ip: string, route: string, serialNumber: string) {
  const res = await app.inject({ method: 'POST', url: `/api/v1/serials/${route}`, remoteAddress: ip, payload: { serialNumber, deviceId: 'd' } })
  const body = res.json() as { code?: string }
  return { status: res.statusCode, outcome: body.code ?? 'OK', retryAfter: Number(res.headers['retry-after']) }
}

function tally (outcomes: Array<{ outcome: string, retryAfter: number }>) {
  const count = (code: string) => outcomes.filter((o) => o.outcome === code).length
  return {
    notFound: count('NOT_FOUND'),
    limited: count('RATE_LIMITED'),
    limitedWithRetryAfter: outcomes.filter((o) => o.outcome === 'RATE_LIMITED' && o.retryAfter >= 1).length
  }
}

let nextIp = 1
const freshIp = () => `10.28.${Math.floor(nextIp / 250)}.${nextIp++ % 250}`

t.test('every GraphQL operation that answers NOT_FOUND as an error is counted', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const known = await createSerial(app, client.id)
  for (const [name, query] of Object.entries(OPS)) {
    const ip = freshIp()
    const answers: string[] = []
    for (let i = 0; i < FAILED_LOOKUP_LIMIT; i++) answers.push((await gqlFrom(app, ip, query, { n: generateSerialNumber() })).outcome)
    t.same([...new Set(answers)], ['NOT_FOUND'], `${name}: ${FAILED_LOOKUP_LIMIT} unknown numbers answered NOT_FOUND`)
    const after = await gqlFrom(app, ip, OPS.validateSerial!, { n: known.serialNumber })
    t.equal(after.outcome, 'RATE_LIMITED', `${name}: then the address is throttled, known serials included`)
    t.ok(after.retryAfter >= 1, `${name}: with Retry-After`)
  }
})

t.test('a NOT_FOUND counts whatever the caller selects (no `code` in the selection)', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const known = await createSerial(app, client.id)
  const ip = freshIp()
  // `isDemo` is null exactly when the serial does not exist: the answer tells as much as `code`.
  const blind = 'mutation ($n: String!) { a: validateSerial(input: { serialNumber: $n, deviceId: "d" }) { valid isDemo } }'
  for (let i = 0; i < FAILED_LOOKUP_LIMIT; i++) {
    const res = await app.inject({ method: 'POST', url: '/graphql', remoteAddress: ip, payload: { query: blind, variables: { n: generateSerialNumber() } } })
    t.same(res.json().data, { a: { valid: false, isDemo: null } })
  }
  const after = await gqlFrom(app, ip, OPS.validateSerial!, { n: known.serialNumber })
  t.equal(after.outcome, 'RATE_LIMITED')
})

t.test(`one document holds at most ${FAILED_LOOKUP_LIMIT} public calls: it could otherwise ask for more unknown numbers at once`, async (t) => {
  const app = await build(t, { background: false })
  const ip = freshIp()
  const doc = (n: number) => `mutation { ${Array.from({ length: n }, (_, i) => `a${i}: validateSerial(input: { serialNumber: "${generateSerialNumber()}", deviceId: "d" }) { code }`).join(' ')} }`
  const over = await app.inject({ method: 'POST', url: '/graphql', remoteAddress: ip, payload: { query: doc(FAILED_LOOKUP_LIMIT + 1) } })
  t.equal(over.statusCode, 200)
  t.equal(over.json().errors?.[0]?.extensions?.code, 'VALIDATION_ERROR', `${FAILED_LOOKUP_LIMIT + 1} aliased public calls: VALIDATION_ERROR`)
  const full = await app.inject({ method: 'POST', url: '/graphql', remoteAddress: ip, payload: { query: doc(FAILED_LOOKUP_LIMIT) } })
  const codes = Object.values((full.json().data ?? {}) as Record<string, { code: string }>).map((v) => v.code)
  t.same([...new Set(codes)], ['NOT_FOUND'], `${FAILED_LOOKUP_LIMIT} run, all NOT_FOUND`)
  const after = await gqlFrom(app, ip, OPS.validateSerial!, { n: generateSerialNumber() })
  t.equal(after.outcome, 'RATE_LIMITED', 'and they spent the budget')
})

t.test(`${BURST} concurrent unknown numbers over REST (every public route): at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND`, async (t) => {
  const app = await build(t, { background: false })
  const ip = freshIp()
  const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => restFrom(app, ip, REST[i % REST.length]!, generateSerialNumber())))
  const { notFound, limited, limitedWithRetryAfter } = tally(answers)
  t.comment(`REST burst: ${notFound} NOT_FOUND, ${limited} RATE_LIMITED of ${BURST}`)
  t.ok(notFound <= FAILED_LOOKUP_LIMIT, `at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND (${notFound})`)
  t.equal(notFound + limited, BURST, 'every other answer is RATE_LIMITED')
  t.equal(limitedWithRetryAfter, limited, 'each with Retry-After')
  t.ok(answers.filter((a) => a.outcome === 'RATE_LIMITED').every((a) => a.status === 429), 'as 429')
})

t.test(`${BURST} concurrent unknown numbers over GraphQL HTTP (every public operation): at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND`, async (t) => {
  const app = await build(t, { background: false })
  const ip = freshIp()
  const queries = Object.values(OPS)
  const answers = await Promise.all(Array.from({ length: BURST }, (_, i) => gqlFrom(app, ip, queries[i % queries.length]!, { n: generateSerialNumber() })))
  const { notFound, limited, limitedWithRetryAfter } = tally(answers)
  t.comment(`GraphQL HTTP burst: ${notFound} NOT_FOUND, ${limited} RATE_LIMITED of ${BURST}`)
  t.ok(notFound <= FAILED_LOOKUP_LIMIT, `at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND (${notFound})`)
  t.equal(notFound + limited, BURST, 'every other answer is RATE_LIMITED')
  t.equal(limitedWithRetryAfter, limited, 'each with Retry-After')
})

t.test(`${BURST} unknown numbers sent at once on one GraphQL WebSocket: at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND`, async (t) => {
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = new WebSocket(`ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`, 'graphql-transport-ws')
  t.teardown(() => socket.terminate())
  const answers = new Map<string, { outcome: string, retryAfter: number }>()
  let acked = false
  socket.on('message', (raw) => {
    const message = JSON.parse(String(raw)) as { type: string, id?: string, payload?: unknown }
    if (message.type === 'connection_ack') acked = true
    if (message.type === 'next') answers.set(message.id!, { outcome: outcome(message.payload as Body), retryAfter: Infinity })
    if (message.type === 'error') {
      const errors = message.payload as NonNullable<Body['errors']>
      answers.set(message.id!, { outcome: outcome({ errors }), retryAfter: errors[0]?.extensions?.retryAfter ?? 0 })
    }
  })
  await once(socket, 'open')
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${ADMIN_KEY}` } }))
  await until(() => acked, 'connection_ack')
  const queries = Object.values(OPS)
  // One burst: every frame is written before the first answer can come back.
  for (let i = 0; i < BURST; i++) socket.send(JSON.stringify({ type: 'subscribe', id: `op${i}`, payload: { query: queries[i % queries.length], variables: { n: generateSerialNumber() } } }))
  await until(() => answers.size === BURST, `${BURST} answers`, 30_000)
  const { notFound, limited, limitedWithRetryAfter } = tally([...answers.values()])
  t.comment(`WebSocket burst: ${notFound} NOT_FOUND, ${limited} RATE_LIMITED of ${BURST}`)
  t.ok(notFound <= FAILED_LOOKUP_LIMIT, `at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND (${notFound})`)
  t.equal(notFound + limited, BURST, 'every other answer is RATE_LIMITED')
  t.equal(limitedWithRetryAfter, limited, 'each with retryAfter (seconds) in its extensions')
})

t.test(`two instances share the budget: ${BURST} concurrent unknown numbers split between them`, { skip: !realBackends && 'needs PostgreSQL and Redis' }, async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const rest = freshIp()
  const restAnswers = await Promise.all(Array.from({ length: BURST }, (_, i) => restFrom(i % 2 ? b : a, rest, REST[i % REST.length]!, generateSerialNumber())))
  const r = tally(restAnswers)
  t.comment(`REST on two instances: ${r.notFound} NOT_FOUND, ${r.limited} RATE_LIMITED`)
  t.ok(r.notFound <= FAILED_LOOKUP_LIMIT, `REST: at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND in all (${r.notFound})`)
  t.equal(r.notFound + r.limited, BURST)

  const graph = freshIp()
  const queries = Object.values(OPS)
  const graphAnswers = await Promise.all(Array.from({ length: BURST }, (_, i) => gqlFrom(i % 2 ? b : a, graph, queries[i % queries.length]!, { n: generateSerialNumber() })))
  const g = tally(graphAnswers)
  t.comment(`GraphQL on two instances: ${g.notFound} NOT_FOUND, ${g.limited} RATE_LIMITED`)
  t.ok(g.notFound <= FAILED_LOOKUP_LIMIT, `GraphQL: at most ${FAILED_LOOKUP_LIMIT} NOT_FOUND in all (${g.notFound})`)
  t.equal(g.notFound + g.limited, BURST)

  // Sequential misses alternate between the instances: each sees the other's.
  const mixed = freshIp()
  for (let i = 0; i < FAILED_LOOKUP_LIMIT; i++) t.equal((await restFrom(i % 2 ? b : a, mixed, 'validate', generateSerialNumber())).outcome, 'NOT_FOUND')
  t.equal((await gqlFrom(a, mixed, OPS.licenseStatus!, { n: generateSerialNumber() })).outcome, 'RATE_LIMITED')
  t.equal((await gqlFrom(b, mixed, OPS.releaseDevice!, { n: generateSerialNumber() })).outcome, 'RATE_LIMITED')
})

t.test('FAILED_LOOKUP_LIMIT sets the figure (default 20)', async (t) => {
  t.equal((await loadConfig({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: 'memory://' })).failedLookupLimit, FAILED_LOOKUP_LIMIT)
  t.equal(FAILED_LOOKUP_LIMIT, 20)
  const app = await build(t, { background: false, env: { FAILED_LOOKUP_LIMIT: '3' } })
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => restFrom(app, '10.28.250.1', REST[i % REST.length]!, generateSerialNumber())))
  t.same(tally(answers), { notFound: 3, limited: 27, limitedWithRetryAfter: 27 }, '30 at once: 3 NOT_FOUND')
})

t.test('a burst of legitimate calls from one address is not refused by the failed-lookup defence', async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const client = await createClient(a)
  const known = await createSerial(a, client.id)
  const ip = freshIp()
  const calls = 150
  const answers = await Promise.all(Array.from({ length: calls }, (_, i) => i % 3 === 0
    ? gqlFrom(i % 2 ? b : a, ip, OPS.validateSerial!, { n: known.serialNumber })
    : restFrom(i % 2 ? b : a, ip, i % 3 === 1 ? 'validate' : 'heartbeat', known.serialNumber)))
  const codes = answers.map((x) => x.outcome)
  t.equal(codes.filter((c) => c === 'VALID').length, calls, `${calls} concurrent calls with a known serial: all VALID (${[...new Set(codes)].join(', ')})`)
  // And the budget is intact afterwards: the address may still miss FAILED_LOOKUP_LIMIT times.
  let misses = 0
  for (let i = 0; i < FAILED_LOOKUP_LIMIT; i++) if ((await restFrom(a, ip, 'validate', generateSerialNumber())).outcome === 'NOT_FOUND') misses++
  t.equal(misses, FAILED_LOOKUP_LIMIT, 'the failed-lookup budget was given back')
})
