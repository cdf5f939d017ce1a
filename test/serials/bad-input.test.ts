// Bad input always gets a clear contract error, and nothing is written.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { queryRows } from '../../src/platform/database.ts'
import { build, createClient, createSerial, gql } from '../helper.ts'

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
    ['count over 10,000', CREATE_MANY, { clientId: client.id, count: 10_001 }, 'VALIDATION_ERROR', 'count'],
    ['negative count', CREATE_MANY, { clientId: client.id, count: -5 }, 'VALIDATION_ERROR', 'count']
  ]
  for (const [name, query, input, code, field] of cases) {
    const res = await gql(app, query, { input })
    t.equal(res.errors?.[0]?.extensions.code, code, name)
    if (field) t.match(res.errors?.[0]?.extensions.errors, [{ field }], `${name} names ${field}`)
  }
  t.equal(await count(), 0, 'no serial was written')

  const wrongType = await gql(app, CREATE, { input: { clientId: client.id, maxUsageCount: 'five' } })
  t.equal(wrongType.status, 400)
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
