// GET /api/v1/openapi.json: a valid OpenAPI 3.1 document that describes every route the server has
// (but a short list of exclusions), names no route it does not have, and that the routes answer as
// it says: each request below is checked against the described statuses, headers and body schemas.
import { Ajv2020 } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { compileErrors, validate } from '@readme/openapi-parser'
import t from 'tap'
import { ERROR_STATUS_CODES, type ErrorStatus } from '../../src/kernel/error-schema.ts'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { FAILED_LOOKUP_LIMIT } from '../../src/http/rate-limit.ts'
import { build, createApiKey, createClient, createSerial } from '../helper.ts'

const PREFIX = '/api/v1'
const DOC_URL = `${PREFIX}/openapi.json`

/** Routes the description leaves out on purpose, and why (every other route must be described). */
const EXCLUDED: Array<{ path: string, methods: string[], why: string }> = [
  { path: '/graphql', methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], why: 'GraphQL: described by its own schema (introspection, schema/schema.graphql); answers follow GraphQL over HTTP, not REST' },
  { path: '/graphiql/assets/:name', methods: ['GET', 'HEAD'], why: 'static assets of the GraphiQL page' },
  { path: '/web/assets/*', methods: ['GET', 'HEAD'], why: 'static assets of the console and portal' }
]
// Also left out: HEAD of every described GET (Fastify's automatic twin: same status and headers, no
// body); each is checked below against its GET's description.

type Json = Record<string, any>
type Checks = Pick<typeof t, 'ok' | 'equal' | 'fail' | 'type'>
type Operation = Json

/** Every (method, path) the router holds, from printRoutes' tree (a child's text extends its parent's). */
function routerRoutes (app: FastifyInstance): Array<{ method: string, path: string }> {
  const routes: Array<{ method: string, path: string }> = []
  const stack: string[] = []
  for (const line of app.printRoutes().split('\n')) {
    const match = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (!match) continue
    const depth = match[1]!.length / 4
    const path = (stack[depth - 1] ?? '') + match[2]!
    stack[depth] = path
    stack.length = depth + 1
    for (const method of match[3]?.split(', ') ?? []) routes.push({ method, path })
  }
  return routes
}

const toOpenApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}')
const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')
const mediaType = (header: unknown) => String(header ?? '').split(';')[0]!.trim().toLowerCase()

t.test('OpenAPI description', async (t) => {
  const app = await build(t, { background: false })
  // A second instance with small limits and a metrics token, for the 429 and 401 answers.
  const METRICS_TOKEN = 'metrics-token-0123456789abcdef'
  const GLOBAL_LIMIT = 3
  const strict = await build(t, { background: false, env: { RATE_LIMIT: String(GLOBAL_LIMIT), METRICS_TOKEN } })

  const docResponse = await app.inject(DOC_URL)
  t.equal(docResponse.statusCode, 200)
  const doc = docResponse.json() as Json
  const paths = doc.paths as Record<string, Record<string, Operation>>

  t.test('is a valid OpenAPI 3.1 document (@readme/openapi-parser)', async (t) => {
    t.match(doc.openapi, /^3\.1\./)
    const result = await validate(structuredClone(doc) as Parameters<typeof validate>[0])
    t.ok(result.valid, result.valid ? 'valid' : compileErrors(result))
    t.same(result.warnings, [], 'no warnings')
    t.ok(doc.components.schemas.ErrorBody, 'the shared ErrorBody schema is a component')
    const ids = Object.values(paths).flatMap((item) => Object.values(item).map((op) => (op as Json).operationId))
    t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
    for (const [path, item] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(item) as Array<[string, Json]>) {
        const name = `${method.toUpperCase()} ${path}`
        t.ok(op.summary && op.tags?.length, `${name} has a summary and a tag`)
        t.ok(Object.keys(op.responses).some((s) => /^[23]/.test(s)), `${name} describes a success`)
        for (const [status, response] of Object.entries(op.responses) as Array<[string, Json]>) {
          if (Number(status) >= 400 && !(path === '/health/ready' && status === '503')) {
            t.same(response.content, { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } }, `${name} ${status} is an ErrorBody`)
          }
          if (status === '429') t.ok(response.headers?.['Retry-After']?.required, `${name} 429 describes Retry-After`)
          if (status === '503') t.ok(response.headers?.['Retry-After'], `${name} 503 describes Retry-After`)
        }
        if (method === 'post') t.ok(op.requestBody?.content?.['application/json']?.schema, `${name} describes its body`)
      }
    }
    t.ok(paths[`${PREFIX}/serials/usage`]?.post?.parameters?.some((p: Json) => p.in === 'header' && p.name === 'Idempotency-Key'), 'usage: Idempotency-Key')
    t.ok(paths[`${PREFIX}/revocations`]?.get?.parameters?.some((p: Json) => p.in === 'header' && p.name === 'If-None-Match'), 'revocations: If-None-Match')
    t.ok(paths[`${PREFIX}/revocations`]?.get?.responses['200'].headers?.ETag, 'revocations: ETag')
  })

  const routes = routerRoutes(app)
  const described = (method: string, path: string) => Boolean(paths[toOpenApiPath(path)]?.[method.toLowerCase()])

  t.test('every route is described or excluded, and every described operation exists', async (t) => {
    t.ok(routes.length > 30, `the router lists ${routes.length} routes`)
    const excluded = (method: string, path: string) => EXCLUDED.some((e) => e.path === path && e.methods.includes(method))
    for (const { method, path } of routes) {
      const ok = described(method, path) || excluded(method, path) || (method === 'HEAD' && described('GET', path))
      t.ok(ok, `${method} ${path} is described${ok ? '' : ' (or add it to EXCLUDED with a reason)'}`)
    }
    for (const e of EXCLUDED) {
      for (const method of e.methods) t.ok(routes.some((r) => r.method === method && r.path === e.path), `exclusion ${method} ${e.path} names a real route`)
    }
    let operations = 0
    for (const [path, item] of Object.entries(paths)) {
      for (const method of Object.keys(item)) {
        operations++
        const url = path.replace(/\{(\w+)\}/g, ':$1')
        t.ok(app.hasRoute({ method: method.toUpperCase() as 'GET', url }), `${method.toUpperCase()} ${path} is a route`)
        t.ok(routes.some((r) => r.method === method.toUpperCase() && toOpenApiPath(r.path) === path), `${method.toUpperCase()} ${path} is in printRoutes`)
      }
    }
    const heads = routes.filter((r) => r.method === 'HEAD' && described('GET', r.path)).length
    const left = routes.filter((r) => EXCLUDED.some((e) => e.path === r.path && e.methods.includes(r.method))).length
    t.comment(`routes: ${routes.length} in the router; ${operations} described, ${heads} HEAD twins of described GETs, ${left} excluded`)
    t.equal(operations + heads + left, routes.length, 'described + HEAD twins + excluded = every route')
  })

  // --- every answer as described ---------------------------------------------------------------

  const ajv = new Ajv2020({ strict: false, allErrors: true })
  formats.default(ajv)
  ajv.addSchema(doc, 'openapi.json')
  const errorBody = ajv.compile({ $ref: 'openapi.json#/components/schemas/ErrorBody' })
  const validators = new Map<string, ReturnType<typeof ajv.compile>>()
  const validatorFor = (ref: string) => {
    let v = validators.get(ref)
    if (!v) { v = ajv.compile({ $ref: ref }); validators.set(ref, v) }
    return v
  }

  let checked = 0
  const seen = new Map<string, Set<string>>()

  /** Sends one request and checks its answer against the operation's description. */
  async function expectDescribed (t: Checks, label: string, options: InjectOptions & { url: string }, instance = app, expected?: number): Promise<LightMyRequestResponse> {
    const method = (options.method ?? 'GET').toUpperCase()
    const path = options.url.split('?')[0]!
    const opMethod = method === 'HEAD' ? 'get' : method.toLowerCase()
    const res = await instance.inject(options)
    checked++
    const name = `${method} ${path} ${label} → ${res.statusCode}`
    const op = paths[path]?.[opMethod]
    if (!op) { t.fail(`${name}: no operation described`); return res }
    if (expected !== undefined) t.equal(res.statusCode, expected, `${name}: status`)
    const status = String(res.statusCode)
    const response = op.responses[status]
    if (!response) { t.fail(`${name}: status not described (${Object.keys(op.responses).join(', ')})`, { body: res.body }); return res }
    const key = `${opMethod.toUpperCase()} ${path}`
    if (!seen.has(key)) seen.set(key, new Set())
    seen.get(key)!.add(status)

    for (const [header, { schema, required }] of Object.entries((response.headers ?? {}) as Record<string, { schema: Json, required?: boolean }>)) {
      const value = res.headers[header.toLowerCase()]
      if (required) t.ok(value !== undefined, `${name}: header ${header} sent`)
      if (value === undefined) continue
      const typed = schema.type === 'integer' ? Number(value) : value
      t.ok(ajv.validate(schema, typed), `${name}: header ${header} (${String(value)}) as described`)
    }
    if (method === 'HEAD' || !response.content) {
      t.equal(res.body, '', `${name}: no body`)
      return res
    }
    const type = mediaType(res.headers['content-type'])
    const media = response.content[type]
    if (!media) { t.fail(`${name}: content type ${type} not described (${Object.keys(response.content).join(', ')})`); return res }
    if (type !== 'application/json') {
      t.type(res.body, 'string', `${name}: ${type} body`)
      return res
    }
    let body: unknown
    try { body = res.json() } catch { t.fail(`${name}: body is not JSON`, { body: res.body }); return res }
    const validateBody = validatorFor(`openapi.json#/${pointer('paths', path, opMethod, 'responses', status, 'content', type, 'schema')}`)
    t.ok(validateBody(body), `${name}: body as described`, { errors: validateBody.errors, body })
    if (res.statusCode >= 400 && !(path === '/health/ready' && res.statusCode === 503)) {
      t.ok(errorBody(body), `${name}: the error format`, { errors: errorBody.errors })
      const b = body as Json
      t.equal(b.statusCode, res.statusCode, `${name}: statusCode repeats the status`)
      t.ok(ERROR_STATUS_CODES[res.statusCode as ErrorStatus]?.includes(b.code), `${name}: code ${b.code} fits ${res.statusCode}`)
      if (b.code === 'RATE_LIMITED' || b.code === 'SERVICE_UNAVAILABLE') t.ok(res.headers['retry-after'], `${name}: Retry-After with ${b.code}`)
    }
    return res
  }

  // Data: a serial with room for several devices, one that will be revoked.
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxDevices: 5 })
  const unknown = generateSerialNumber()
  const BAD_CREDENTIAL = { authorization: 'Bearer srl_not-a-real-key' }
  const json = { 'content-type': 'application/json' }

  /** The malformed and mistyped bodies every public POST refuses. */
  function badBodies (valid: Json): Array<[string, Omit<InjectOptions, 'url'>, number]> {
    const big = JSON.stringify({ ...valid, pad: 'x'.repeat(1024 * 1024) })
    const deep = `{"serialNumber":"x","deviceId":"d","deviceInfo":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`
    return [
      ['malformed JSON', { headers: json, payload: '{"serialNumber":' }, 400],
      ['empty body', { headers: json, payload: '' }, 400],
      ['an array', { headers: json, payload: '[]' }, 400],
      ['serialNumber a number', { payload: { ...valid, serialNumber: 42 } }, 400],
      ['deviceId a list', { payload: { ...valid, deviceId: ['d'] } }, 400],
      ['no deviceId', { payload: { serialNumber: valid.serialNumber } }, 400],
      ['no serialNumber', { payload: { deviceId: valid.deviceId } }, 400],
      ['empty deviceId', { payload: { ...valid, deviceId: '' } }, 400],
      ['deviceId over 128', { payload: { ...valid, deviceId: 'd'.repeat(129) } }, 400],
      ['serialNumber over 64', { payload: { ...valid, serialNumber: 'A'.repeat(65) } }, 400],
      ['nested 40 deep', { headers: json, payload: deep }, 400],
      ['over 1 MiB', { headers: json, payload: big }, 413],
      ['text/plain', { headers: { 'content-type': 'text/plain' }, payload: JSON.stringify(valid) }, 415],
      ['form-encoded', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'serialNumber=x' }, 415],
      ['an invalid credential', { headers: BAD_CREDENTIAL, payload: valid }, 401]
    ]
  }

  t.test('validate', async (t) => {
    const url = `${PREFIX}/serials/validate`
    const valid = { serialNumber: serial.serialNumber, deviceId: 'oas-1' }
    const ok = await expectDescribed(t, 'valid', { method: 'POST', url, payload: valid }, app, 200)
    t.match(ok.json(), { valid: true, code: 'VALID' })
    const signed = await expectDescribed(t, 'nonce and deviceInfo', { method: 'POST', url, payload: { ...valid, nonce: 'n-1', deviceInfo: { os: 'linux' } } }, app, 200)
    t.match(signed.json(), { nonce: 'n-1', signature: String })
    await expectDescribed(t, 'nulls', { method: 'POST', url, payload: { ...valid, nonce: null, deviceInfo: null } }, app, 200)
    t.match((await expectDescribed(t, 'unknown serial', { method: 'POST', url, payload: { ...valid, serialNumber: unknown } }, app, 200)).json(), { valid: false, code: 'NOT_FOUND' })
    t.match((await expectDescribed(t, 'not well formed', { method: 'POST', url, payload: { ...valid, serialNumber: 'nope' } }, app, 200)).json(), { valid: false, code: 'INVALID_FORMAT' })
    await expectDescribed(t, 'deviceInfo a string', { method: 'POST', url, payload: { ...valid, deviceInfo: 'x' } }, app, 400)
    await expectDescribed(t, 'deviceInfo over 2 KiB', { method: 'POST', url, payload: { ...valid, deviceInfo: { pad: 'x'.repeat(3000) } } }, app, 400)
    await expectDescribed(t, 'nonce over 128', { method: 'POST', url, payload: { ...valid, nonce: 'n'.repeat(129) } }, app, 400)
    for (const [label, options, status] of badBodies(valid)) await expectDescribed(t, label, { ...options, method: 'POST', url }, app, status)
  })

  t.test('heartbeat', async (t) => {
    const url = `${PREFIX}/serials/heartbeat`
    const valid = { serialNumber: serial.serialNumber, deviceId: 'oas-1' }
    t.match((await expectDescribed(t, 'held slot', { method: 'POST', url, payload: valid }, app, 200)).json(), { code: 'VALID' })
    await expectDescribed(t, 'device without a slot takes one', { method: 'POST', url, payload: { ...valid, deviceId: 'oas-heartbeat' } }, app, 200)
    t.match((await expectDescribed(t, 'unknown serial', { method: 'POST', url, payload: { ...valid, serialNumber: unknown } }, app, 200)).json(), { alive: false, code: 'NOT_FOUND' })
    for (const [label, options, status] of badBodies(valid)) await expectDescribed(t, label, { ...options, method: 'POST', url }, app, status)
  })

  t.test('usage', async (t) => {
    const url = `${PREFIX}/serials/usage`
    const valid = { serialNumber: serial.serialNumber, deviceId: 'oas-1', quantity: 2, feature: 'export' }
    await expectDescribed(t, 'recorded', { method: 'POST', url, payload: valid }, app, 201)
    await expectDescribed(t, 'defaults', { method: 'POST', url, payload: { serialNumber: serial.serialNumber, deviceId: 'oas-1', quantity: null, feature: null } }, app, 201)
    const key = { 'idempotency-key': `oas-${Date.now()}` }
    const first = await expectDescribed(t, 'Idempotency-Key', { method: 'POST', url, headers: key, payload: valid }, app, 201)
    const replay = await expectDescribed(t, 'same key, same request', { method: 'POST', url, headers: key, payload: valid }, app, 201)
    t.same(replay.json(), first.json(), 'the replay is the first answer')
    await expectDescribed(t, 'same key, other request', { method: 'POST', url, headers: key, payload: { ...valid, quantity: 3 } }, app, 409)
    await expectDescribed(t, 'Idempotency-Key over 255', { method: 'POST', url, headers: { 'idempotency-key': 'k'.repeat(256) }, payload: valid }, app, 400)
    t.match((await expectDescribed(t, 'unknown serial', { method: 'POST', url, payload: { ...valid, serialNumber: unknown } }, app, 200)).json(), { recorded: false, code: 'NOT_FOUND' })
    t.match((await expectDescribed(t, 'not well formed', { method: 'POST', url, payload: { ...valid, serialNumber: 'nope' } }, app, 200)).json(), { recorded: false, code: 'INVALID_FORMAT' })
    await expectDescribed(t, 'quantity a string', { method: 'POST', url, payload: { ...valid, quantity: '2' } }, app, 400)
    await expectDescribed(t, 'quantity 0', { method: 'POST', url, payload: { ...valid, quantity: 0 } }, app, 400)
    await expectDescribed(t, 'quantity 1.5', { method: 'POST', url, payload: { ...valid, quantity: 1.5 } }, app, 400)
    await expectDescribed(t, 'feature over 64', { method: 'POST', url, payload: { ...valid, feature: 'f'.repeat(65) } }, app, 400)
    for (const [label, options, status] of badBodies(valid)) await expectDescribed(t, label, { ...options, method: 'POST', url }, app, status)
  })

  t.test('release', async (t) => {
    const url = `${PREFIX}/serials/release`
    const valid = { serialNumber: serial.serialNumber, deviceId: 'oas-1' }
    t.match((await expectDescribed(t, 'held slot', { method: 'POST', url, payload: valid }, app, 200)).json(), { deviceId: 'oas-1', active: false })
    await expectDescribed(t, 'already released', { method: 'POST', url, payload: valid }, app, 200)
    await expectDescribed(t, 'unknown device', { method: 'POST', url, payload: { ...valid, deviceId: 'never-seen' } }, app, 404)
    await expectDescribed(t, 'unknown serial', { method: 'POST', url, payload: { ...valid, serialNumber: unknown } }, app, 404)
    await expectDescribed(t, 'not well formed', { method: 'POST', url, payload: { ...valid, serialNumber: 'nope' } }, app, 400)
    for (const [label, options, status] of badBodies(valid)) await expectDescribed(t, label, { ...options, method: 'POST', url }, app, status)
  })

  t.test('public key, revocation list, this document', async (t) => {
    for (const url of [`${PREFIX}/public-key`, `${PREFIX}/revocations`, DOC_URL]) {
      await expectDescribed(t, 'plain', { url }, app, 200)
      await expectDescribed(t, 'HEAD', { method: 'HEAD', url }, app, 200)
      await expectDescribed(t, 'with a query string', { url: `${url}?x=1` }, app, 200)
      await expectDescribed(t, 'an invalid credential', { url, headers: BAD_CREDENTIAL }, app, 401)
    }
    const list = await app.inject(`${PREFIX}/revocations`)
    const etag = String(list.headers.etag)
    const url = `${PREFIX}/revocations`
    await expectDescribed(t, 'If-None-Match current', { url, headers: { 'if-none-match': etag } }, app, 304)
    await expectDescribed(t, 'If-None-Match weak', { url, headers: { 'if-none-match': `"old", W/${etag}` } }, app, 304)
    await expectDescribed(t, 'If-None-Match *', { url, headers: { 'if-none-match': '*' } }, app, 304)
    await expectDescribed(t, 'If-None-Match stale', { url, headers: { 'if-none-match': '"old"' } }, app, 200)
  })

  t.test('health, readiness, metrics', async (t) => {
    for (const url of ['/health', '/health/ready']) {
      await expectDescribed(t, 'plain', { url }, app, 200)
      await expectDescribed(t, 'HEAD', { method: 'HEAD', url }, app, 200)
      await expectDescribed(t, 'an invalid credential', { url, headers: BAD_CREDENTIAL }, app, 401)
    }
    await expectDescribed(t, 'no token needed', { url: '/metrics' }, app, 200)
    await expectDescribed(t, 'HEAD', { method: 'HEAD', url: '/metrics' }, app, 200)
    await expectDescribed(t, 'an API credential is not read', { url: '/metrics', headers: BAD_CREDENTIAL }, app, 200)
    await expectDescribed(t, 'METRICS_TOKEN: none sent', { url: '/metrics' }, strict, 401)
    await expectDescribed(t, 'METRICS_TOKEN: wrong', { url: '/metrics', headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } }, strict, 401)
    await expectDescribed(t, 'METRICS_TOKEN: right', { url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } }, strict, 200)
  })

  t.test('pages', async (t) => {
    for (const url of ['/dashboard', '/portal']) {
      // 200 once `npm run build` has built them, else 503: both are described.
      await expectDescribed(t, 'page', { url })
      await expectDescribed(t, 'HEAD', { method: 'HEAD', url })
      await expectDescribed(t, 'an invalid credential', { url, headers: BAD_CREDENTIAL }, app, 401)
      await expectDescribed(t, 'trailing slash', { url: `${url}/` }, app, 301)
      await expectDescribed(t, 'trailing slash, HEAD', { method: 'HEAD', url: `${url}/` }, app, 301)
      await expectDescribed(t, 'trailing slash, an invalid credential', { url: `${url}/`, headers: BAD_CREDENTIAL }, app, 401)
    }
    if (paths['/graphiql']) {
      await expectDescribed(t, 'page', { url: '/graphiql' }, app, 200)
      await expectDescribed(t, 'HEAD', { method: 'HEAD', url: '/graphiql' }, app, 200)
      await expectDescribed(t, 'an invalid credential', { url: '/graphiql', headers: BAD_CREDENTIAL }, app, 401)
    }
    if (paths['/']) {
      await expectDescribed(t, 'a browser', { url: '/', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } }, app, 302)
      await expectDescribed(t, 'an API client', { url: '/', headers: { accept: 'application/json' } }, app, 404)
      await expectDescribed(t, 'no Accept', { url: '/' }, app, 404)
      await expectDescribed(t, 'HEAD', { method: 'HEAD', url: '/' }, app, 404)
      await expectDescribed(t, 'an invalid credential', { url: '/', headers: BAD_CREDENTIAL }, app, 401)
    }
  })

  t.test('429: the per-IP limits, the failed-lookup limit and a client quota', async (t) => {
    // Failed lookups: an address with FAILED_LOOKUP_LIMIT unknown serials is refused on every public call.
    const remoteAddress = '10.77.0.1'
    const url = `${PREFIX}/serials/validate`
    for (let i = 0; i < FAILED_LOOKUP_LIMIT; i++) await expectDescribed(t, `unknown serial ${i + 1}`, { method: 'POST', url, remoteAddress, payload: { serialNumber: unknown, deviceId: 'd' } }, app, 200)
    for (const path of ['validate', 'heartbeat', 'usage', 'release']) {
      await expectDescribed(t, 'after the failed lookups', { method: 'POST', url: `${PREFIX}/serials/${path}`, remoteAddress, payload: { serialNumber: serial.serialNumber, deviceId: 'd' } }, app, 429)
    }
    // The default per-IP limit (RATE_LIMIT, per route) on every other route but health and metrics.
    const limited = [`${PREFIX}/public-key`, `${PREFIX}/revocations`, DOC_URL, '/dashboard', '/dashboard/', '/portal', '/portal/', '/', '/graphiql'].filter((u) => paths[u])
    for (const u of limited) {
      for (let i = 0; i < GLOBAL_LIMIT; i++) await expectDescribed(t, `call ${i + 1}`, { url: u }, strict)
      await expectDescribed(t, `over RATE_LIMIT=${GLOBAL_LIMIT}`, { url: u }, strict, 429)
    }
    for (const u of ['/health', '/health/ready']) {
      for (let i = 0; i <= GLOBAL_LIMIT; i++) await expectDescribed(t, `not rate-limited (${i + 1})`, { url: u }, strict, 200)
    }
    // A client's quotaPerMinute counts every call made with its credentials, health included.
    const quotaClient = await createClient(app, { quotaPerMinute: 2 })
    const manager = { authorization: `Bearer ${await createApiKey(app, 'MANAGER', quotaClient.id)}` }
    await expectDescribed(t, 'quota 1', { url: '/health', headers: manager }, app, 200)
    await expectDescribed(t, 'quota 2', { url: '/health/ready', headers: manager }, app, 200)
    await expectDescribed(t, 'over the quota', { url: '/health', headers: manager }, app, 429)
    await expectDescribed(t, 'over the quota', { url: '/health/ready', headers: manager }, app, 429)
    await expectDescribed(t, 'over the quota', { url: `${PREFIX}/public-key`, headers: manager }, app, 429)
    await expectDescribed(t, 'over the quota', { method: 'POST', url, headers: manager, payload: { serialNumber: serial.serialNumber, deviceId: 'q' } }, app, 429)
  })

  t.test('500 and 503: a failing dependency answers INTERNAL, an unreachable database SERVICE_UNAVAILABLE', async (t) => {
    const { services, metrics } = app.deps
    const fault = () => new Error('boom: relation "serials" at 10.0.0.5')
    const outage = () => Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' })
    /** Runs `fn` with holder[method] throwing `error()`, then puts it back. */
    async function failing (holder: object, method: string, error: () => Error, fn: () => Promise<void>) {
      const target = holder as Record<string, unknown>
      const original = target[method]
      target[method] = () => { throw error() }
      try { await fn() } finally { target[method] = original }
    }
    const body = { serialNumber: serial.serialNumber, deviceId: 'e' }
    const cases: Array<[string, object, string, InjectOptions & { url: string }]> = [
      ['validate', services.validation, 'validate', { method: 'POST', url: `${PREFIX}/serials/validate`, payload: body }],
      ['heartbeat', services.validation, 'heartbeat', { method: 'POST', url: `${PREFIX}/serials/heartbeat`, payload: body }],
      ['usage', services.usage, 'record', { method: 'POST', url: `${PREFIX}/serials/usage`, payload: body }],
      ['release', services.devices, 'releaseBySerialNumber', { method: 'POST', url: `${PREFIX}/serials/release`, payload: body }],
      ['public key', services.certificates, 'publicKey', { url: `${PREFIX}/public-key` }],
      ['revocation list', services.revocationList, 'current', { url: `${PREFIX}/revocations` }],
      ['this document', app, 'swagger', { url: DOC_URL }]
    ]
    for (const [label, holder, method, options] of cases) {
      await failing(holder, method, fault, async () => {
        const res = await expectDescribed(t, `${label} failing`, options, app, 500)
        t.notMatch(res.body, /boom|10\.0\.0\.5|relation/, `${label}: no detail of the failure`)
      })
      if (label !== 'this document') await failing(holder, method, outage, async () => { await expectDescribed(t, `${label}: database unreachable`, options, app, 503) })
    }
    await failing(metrics.registry, 'metrics', fault, async () => { await expectDescribed(t, 'registry failing', { url: '/metrics' }, app, 500) })
    await failing(app.deps.database, 'ping', outage, async () => {
      const res = await expectDescribed(t, 'database down', { url: '/health/ready' }, app, 503)
      t.match(res.json(), { status: 'down', checks: { database: { status: 'down' } } }, 'the readiness body, not an ErrorBody')
    })
    // A credential sent is checked against the database on every route but /metrics, public or not.
    const credential = { authorization: 'Bearer srl_checked-against-the-database' }
    const everyGet = Object.keys(paths).filter((p) => paths[p]!.get && p !== '/metrics')
    for (const [error, status] of [[fault, 500], [outage, 503]] as const) {
      await failing(app, 'authenticate', error, async () => {
        for (const url of everyGet) await expectDescribed(t, `credential check ${status}`, { url, headers: credential }, app, status)
        await expectDescribed(t, `credential check ${status}`, { method: 'POST', url: `${PREFIX}/serials/validate`, headers: credential, payload: body }, app, status)
      })
    }
  })

  t.test('figures', async (t) => {
    let describedPairs = 0
    let seenPairs = 0
    const unseen: string[] = []
    for (const [path, item] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(item)) {
        const statuses = Object.keys(op.responses)
        const got = seen.get(`${method.toUpperCase()} ${path}`) ?? new Set()
        describedPairs += statuses.length
        seenPairs += statuses.filter((s) => got.has(s)).length
        const missing = statuses.filter((s) => !got.has(s))
        if (missing.length) unseen.push(`${method.toUpperCase()} ${path}: ${missing.join(', ')}`)
        t.ok(got.size > 0, `${method.toUpperCase()} ${path} was exercised`)
      }
    }
    t.comment(`answers checked: ${checked}; described (operation, status) pairs answered: ${seenPairs} of ${describedPairs}`)
    if (unseen.length > 0) t.comment(`described but not produced here: ${unseen.join('; ')}`)
    t.ok(checked > 200, `${checked} answers checked`)
  })
})
