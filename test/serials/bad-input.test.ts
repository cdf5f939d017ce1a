// Bad input always gets a clear contract error, and nothing is written.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { queryRows } from '../../src/infra/database.ts'
import { jsonTooDeep, valueTooDeep } from '../../src/kernel/input.ts'
import { ADMIN_KEY, build, createClient, createSerial, gql, restValidate } from '../helper.ts'

const CREATE = 'mutation ($input: CreateSerialInput!) { createSerial(input: $input) { serialNumber } }'
const CREATE_MANY = 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count } }'

t.test('invalid serial input answers VALIDATION_ERROR or NOT_FOUND and writes nothing', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const count = async () => Number((await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from serials where client_id = ${client.id}`))[0]?.n)

  const cases: Array<[string, string, Record<string, unknown>, string, string?]> = [
    ['oversized metadata', CREATE, { clientId: client.id, metadata: { blob: 'x'.repeat(5000) } }, 'VALIDATION_ERROR', 'metadata'],
    ['metadata not an object', CREATE, { clientId: client.id, metadata: [1, 2] }, 'VALIDATION_ERROR', 'metadata'],
    ['negative maxUsageCount', CREATE, { clientId: client.id, maxUsageCount: -1 }, 'VALIDATION_ERROR', 'maxUsageCount'],
    ['zero maxUsageCount', CREATE, { clientId: client.id, maxUsageCount: 0 }, 'VALIDATION_ERROR', 'maxUsageCount'],
    ['huge maxUsageCount', CREATE, { clientId: client.id, maxUsageCount: 2_000_000_000 }, 'VALIDATION_ERROR', 'maxUsageCount'],
    ['expiry in the past', CREATE, { clientId: client.id, expiresAt: '2001-01-01T00:00:00Z' }, 'VALIDATION_ERROR', 'expiresAt'],
    ['unknown client', CREATE, { clientId: 'cli_00000000000000000000000000' }, 'NOT_FOUND'],
    ['count 0', CREATE_MANY, { clientId: client.id, count: 0 }, 'VALIDATION_ERROR', 'count'],
    // Refused by the document's work bound or by the input schema, whichever looks first.
    ['count over 10,000', CREATE_MANY, { clientId: client.id, count: 10_001 }, 'VALIDATION_ERROR'],
    ['negative count', CREATE_MANY, { clientId: client.id, count: -5 }, 'VALIDATION_ERROR', 'count']
  ]
  for (const [name, query, input, code, field] of cases) {
    const res = await gql(app, query, { input })
    t.equal(res.errors?.[0]?.extensions.code, code, name)
    if (field) t.match(res.errors?.[0]?.extensions.errors, [{ field }], `${name} names ${field}`)
  }
  t.equal(await count(), 0, 'no serial was written')

  const wrongType = await gql(app, CREATE, { input: { clientId: client.id, maxUsageCount: 'five' } })
  t.equal(wrongType.status, 200, 'GraphQL over HTTP: a well-formed GraphQL response is 200 with application/json')
  t.equal(wrongType.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', 'GraphQL type errors use the contract code too')
  const dateType = await gql(app, CREATE, { input: { clientId: client.id, expiresAt: 'tomorrow' } })
  t.equal(dateType.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.equal(await count(), 0)
})

t.test('unknown ids answer NOT_FOUND naming the id', async (t) => {
  const app = await build(t)
  const missing = 'ser_00000000000000000000000000'
  for (const [query, input] of [
    ['mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { id: missing, reason: 'x' }],
    ['mutation ($input: SuspendSerialInput!) { suspendSerial(input: $input) { id } }', { id: missing }],
    ['mutation ($input: UpdateSerialInput!) { updateSerial(input: $input) { id } }', { id: missing, maxUsageCount: 3 }],
    ['mutation ($input: RevealSerialNumberInput!) { revealSerialNumber(input: $input) }', { id: missing }],
    ['mutation ($input: DeactivateDeviceInput!) { deactivateDevice(input: $input) { id } }', { serialId: missing, deviceId: 'x' }]
  ] as const) {
    const res = await gql(app, query, { input })
    t.match(res.errors?.[0], { message: `serial ${missing} not found`, extensions: { code: 'NOT_FOUND', statusCode: 404 } })
  }
  const q = await gql(app, 'query ($id: ID!) { serial(id: $id) { id } }', { id: missing })
  t.match(q.errors?.[0]?.extensions, { code: 'NOT_FOUND' })
})

t.test('validation input: bad device ids, oversize device info, long nonce', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  for (const [name, body, field] of [
    ['empty deviceId', { serialNumber: serial.serialNumber, deviceId: '' }, 'deviceId'],
    ['deviceId too long', { serialNumber: serial.serialNumber, deviceId: 'x'.repeat(129) }, 'deviceId'],
    ['control characters', { serialNumber: serial.serialNumber, deviceId: 'a\u0000b' }, 'deviceId'],
    ['device info too big', { serialNumber: serial.serialNumber, deviceId: 'a', deviceInfo: { blob: 'x'.repeat(3000) } }, 'deviceInfo'],
    ['nonce too long', { serialNumber: serial.serialNumber, deviceId: 'a', nonce: 'n'.repeat(200) }, 'nonce']
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: body })
    t.equal(res.statusCode, 400, name)
    t.match(res.json(), { code: 'VALIDATION_ERROR', errors: [{ field }] }, name)
  }
  const [row] = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from devices where serial_id = ${serial.id}`)
  t.equal(Number(row?.n), 0, 'no device was activated')
})

t.test('revocation is final and needs a reason', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const noReason = await gql(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { input: { id: serial.id, reason: '  ' } })
  t.match(noReason.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'reason' }] })
  const revoked = await gql(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status revokeReason revokedAt } }', { input: { id: serial.id, reason: 'refund' } })
  t.match(revoked.data?.revokeSerial, { status: 'REVOKED', revokeReason: 'refund', revokedAt: String })
  for (const query of [
    'mutation ($input: ReinstateSerialInput!) { reinstateSerial(input: $input) { id } }',
    'mutation ($input: SuspendSerialInput!) { suspendSerial(input: $input) { id } }'
  ]) {
    const res = await gql(app, query, { input: { id: serial.id } })
    t.match(res.errors?.[0]?.extensions, { code: 'CONFLICT' })
  }
})

const FAR = '+275760-09-13T00:00:00Z'
const BEFORE_EPOCH = '-000001-01-01T00:00:00Z'

t.test('dates outside 1970–9999 answer VALIDATION_ERROR at every date input, never a database 500', async (t) => {
  const app = await build(t, { env: { FEATURE_ADVANCED_ANALYTICS: 'true' } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['createSerial expiresAt', CREATE, { input: { clientId: client.id, expiresAt: FAR } }],
    ['createSerial expiresAt, five-digit year', CREATE, { input: { clientId: client.id, expiresAt: '+010000-01-01T00:00:00Z' } }],
    ['createSerials expiresAt', CREATE_MANY, { input: { clientId: client.id, count: 2, expiresAt: FAR } }],
    ['updateSerial expiresAt', 'mutation ($input: UpdateSerialInput!) { updateSerial(input: $input) { id } }', { input: { id: serial.id, expiresAt: FAR } }],
    ['createApiKey expiresAt', 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }', { input: { name: 'far', role: 'AUDITOR', expiresAt: FAR } }],
    ['serials expiresBefore', 'query ($f: SerialFilter) { serials(first: 1, filter: $f) { edges { node { id } } } }', { f: { expiresBefore: FAR } }],
    ['serials expiresBefore before the epoch', 'query ($f: SerialFilter) { serials(first: 1, filter: $f) { edges { node { id } } } }', { f: { expiresBefore: BEFORE_EPOCH } }],
    ['usagePatterns since', 'query ($s: DateTime) { usagePatterns(granularity: DAY, since: $s) { count } }', { s: BEFORE_EPOCH }],
    ['usagePatterns until', 'query ($u: DateTime) { usagePatterns(granularity: HOUR, until: $u) { count } }', { u: FAR }],
    ['auditLog since', 'query ($f: AuditLogFilter) { auditLog(first: 1, filter: $f) { edges { node { id } } } }', { f: { since: FAR } }]
  ]
  for (const [name, query, variables] of cases) {
    const res = await gql(app, query, variables)
    t.equal(res.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', name)
    t.not(res.status, 500, `${name}: no 500`)
  }
  const latest = await gql(app, CREATE, { input: { clientId: client.id, expiresAt: '9999-12-31T00:00:00Z' } })
  t.equal(latest.errors, undefined, 'the last day of year 9999 is accepted')
})

t.test('Idempotency-Key: at most 255 printable characters, refused before any work', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const devices = async () => Number((await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from devices where serial_id = ${serial.id}`))[0]?.n)
  const usage = (key: string) => app.inject({ method: 'POST', url: '/api/v1/serials/usage', headers: { 'idempotency-key': key }, payload: { serialNumber: serial.serialNumber, deviceId: 'idem-device' } })

  for (const [name, key] of [['3,000 characters', 'k'.repeat(3000)], ['256 characters', 'k'.repeat(256)], ['a control character', 'key\u0001x'], ['non-ASCII', 'clé-1']] as const) {
    const res = await usage(key)
    t.equal(res.statusCode, 400, `header with ${name}`)
    t.match(res.json(), { code: 'VALIDATION_ERROR', errors: [{ field: 'Idempotency-Key' }] })
  }
  t.equal(await devices(), 0, 'a refused key activated no device')
  const ok = await usage('k'.repeat(255))
  t.equal(ok.statusCode, 201, '255 characters are accepted')
  t.equal((await usage('k'.repeat(255))).json().usageEvent.id, ok.json().usageEvent.id, 'and replayed')

  const RECORD = 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { recorded } }'
  const long = await gql(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'idem-device', idempotencyKey: 'x'.repeat(3000) } }, null)
  t.match(long.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'idempotencyKey' }] }, 'GraphQL idempotencyKey too')
  const bulk = await gql(app, CREATE_MANY, { input: { clientId: client.id, count: 1, idempotencyKey: 'x'.repeat(256) } })
  t.match(bulk.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'idempotencyKey' }] }, 'createSerials idempotencyKey too')
})

t.test('deeply nested JSON bodies answer VALIDATION_ERROR, not a stack overflow', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const nested = (levels: number) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels)
  const arrays = (levels: number) => '['.repeat(levels) + ']'.repeat(levels)

  for (const [name, deviceInfo] of [['5,000 objects', nested(5000)], ['5,000 arrays', arrays(5000)], ['33 levels', nested(33)]] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'application/json' }, payload: `{"serialNumber":"${serial.serialNumber}","deviceId":"d","deviceInfo":${deviceInfo}}` })
    t.equal(res.statusCode, 400, `deviceInfo with ${name}`)
    t.match(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR' })
  }
  const metadata = await app.inject({ method: 'POST', url: '/graphql', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, payload: `{"query":${JSON.stringify(CREATE)},"variables":{"input":{"clientId":"${client.id}","metadata":${nested(5000)}}}}` })
  t.equal(metadata.statusCode, 400, 'metadata 5,000 levels deep over GraphQL')
  t.match(metadata.json(), { errors: [{ extensions: { code: 'VALIDATION_ERROR' } }] })
  const brackets = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'application/json' }, payload: `{"serialNumber":"${serial.serialNumber}","deviceId":"d1","deviceInfo":{"a":"${'['.repeat(400)}","b":"${'{'.repeat(400)}\\"}"}}` })
  t.equal(brackets.statusCode, 200, 'brackets inside strings do not count as nesting')
  const shallow = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'd2', deviceInfo: JSON.parse(nested(10)) })
  t.equal(shallow.status, 200, 'ten levels are fine')
})

t.test('nesting bounds hold on already parsed values too (WebSocket messages, GraphQL literals)', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  let deepValue: Record<string, unknown> = {}
  for (let i = 0; i < 100_000; i++) deepValue = { a: deepValue }
  t.equal(valueTooDeep(deepValue), true, '100,000 levels are measured without a stack overflow')
  t.equal(jsonTooDeep('['.repeat(100_000)), true)
  t.equal(jsonTooDeep('{"a":"' + '['.repeat(100) + '"}'), false, 'brackets in strings are not nesting')
  t.equal(jsonTooDeep('{"a":"\\"' + '['.repeat(100) + '"}'), false, 'nor after an escaped quote')

  let literal = '1'
  for (let i = 0; i < 40; i++) literal = `{a: ${literal}}`
  const res = await gql(app, `mutation { createSerial(input: {clientId: "${client.id}", metadata: ${literal}}) { serialNumber } }`)
  t.equal(res.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', 'metadata 40 levels deep as a GraphQL literal')
  t.not(res.status, 500)
})
