// Limits key on the route that handles a request, not on its URL text: percent-encodings, `#…`,
// `?…` and other spellings that reach a public handler are counted like the plain path, on two
// instances (real PostgreSQL and Redis when TEST_* are set).
import { request as httpRequest } from 'node:http'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { FAILED_LOOKUP_LIMIT } from '../../src/http/rate-limit.ts'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { buildPair, createClient, createSerial } from '../helper.ts'

/** Spellings of `POST /api/v1/serials/validate` that the router sends to the validate handler (or refuses). */
const VALIDATE_PATHS = [
  '/api/v1/serials/validate',
  '/api/v1/serials/%76alidate',
  '/api/v1/serials/validat%65',
  '/api/v1/%73erials/validate',
  '/api/v1/serials/%76%61%6c%69%64%61%74%65',
  '/api/v1/serials/validate#fragment',
  '/api/v1/serials/validate?x=1',
  '/api/v1/serials/validate?',
  '/api/v1/serials/validate?#',
  '/api/v1/serials/validate/',
  '/api/v1/serials/validate;x',
  '//api/v1/serials/validate',
  '/api/v1/serials/./validate',
  '/api/v1/serials/%2e/validate'
]
const GRAPHQL_PATHS = ['/graphql', '/%67raphql', '/graphql#x', '/graphql?a=b', '/graphq%6c']

interface Answer { status: number, body: Record<string, any> }

/** A raw HTTP request: the path goes on the wire exactly as written (fetch would normalise it). */
async function post (app: FastifyInstance, path: string, body: unknown): Promise<Answer> {
  const { port } = app.server.address() as { port: number }
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

async function listening (t: { teardown (fn: () => unknown): void }, env: Record<string, string>): Promise<[FastifyInstance, FastifyInstance]> {
  const [a, b] = await buildPair(t, { background: false, env })
  for (const app of new Set([a, b])) await app.listen({ port: 0, host: '127.0.0.1' })
  return [a, b]
}

const VALIDATE_GQL = 'mutation ($input: ValidateSerialInput!) { validateSerial(input: $input) { code } }'

t.test('every spelling of a public route spends the one per-IP budget, on either instance', async (t) => {
  const limit = 12
  const [a, b] = await listening(t, { VALIDATE_RATE_LIMIT: String(limit) })
  const client = await createClient(a)
  const serial = await createSerial(a, client.id)
  const body = { serialNumber: serial.serialNumber, deviceId: 'path-device' }

  let handled = 0
  let refused = 0
  const spellings = [...VALIDATE_PATHS.map((p) => ['rest', p] as const), ...GRAPHQL_PATHS.map((p) => ['graphql', p] as const)]
  for (let round = 0; round < 2; round++) {
    for (const [i, [kind, path]] of spellings.entries()) {
      const app = i % 2 === 0 ? a : b
      const res = kind === 'rest' ? await post(app, path, body) : await post(app, path, { query: VALIDATE_GQL, variables: { input: body } })
      t.ok(res.status < 500, `${path} is never a 5xx`)
      t.type(res.body.code ?? res.body.errors?.[0]?.extensions?.code ?? res.body.data?.validateSerial?.code, 'string', `${path} answers in the contract format`)
      const reached = res.body.code === 'VALID' || res.body.data?.validateSerial?.code === 'VALID'
      const limited = res.body.code === 'RATE_LIMITED' || res.body.errors?.[0]?.extensions?.code === 'RATE_LIMITED'
      if (reached) handled++
      if (limited) refused++
    }
  }
  t.ok(handled <= limit, `at most ${limit} validations ran (${handled} did)`)
  t.ok(refused > 0, 'the rest were RATE_LIMITED')
  const plain = await post(b, '/api/v1/serials/%76alidate', body)
  t.equal(plain.status, 429, 'an encoded path is refused once the budget is spent')
  t.match(plain.body, { statusCode: 429, code: 'RATE_LIMITED' })
})

t.test('NOT_FOUND answers through encoded paths feed the failed-lookup defence', async (t) => {
  const [a, b] = await listening(t, { VALIDATE_RATE_LIMIT: '100000' })
  const client = await createClient(a)
  const known = await createSerial(a, client.id)
  const encoded = VALIDATE_PATHS.slice(1, 9) // the spellings the router hands to the handler
  let notFound = 0
  for (let i = 0; notFound < FAILED_LOOKUP_LIMIT && i < FAILED_LOOKUP_LIMIT * 3; i++) {
    const res = await post(i % 2 === 0 ? a : b, encoded[i % encoded.length]!, { serialNumber: generateSerialNumber(), deviceId: 'd' })
    if (res.body.code === 'NOT_FOUND') notFound++
  }
  t.equal(notFound, FAILED_LOOKUP_LIMIT, 'unknown serials were looked up through encoded paths')
  for (const path of ['/api/v1/serials/validate', '/api/v1/serials/%76alidate', '/api/v1/serials/validate#f']) {
    const res = await post(b, path, { serialNumber: known.serialNumber, deviceId: 'd' })
    t.equal(res.status, 429, `${path}: the address is blocked, known serial or not`)
    t.equal(res.body.code, 'RATE_LIMITED')
  }
})
