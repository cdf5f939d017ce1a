import { sql } from 'drizzle-orm'
import t from 'tap'
import { queryRows } from '../../src/infra/database.ts'
import { normaliseSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { build, createClient, gql, gqlOk } from '../helper.ts'

const CREATE_MANY = 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count serials { serialNumber serial { id batchId maxUsageCount isDemo expiresAt } } } }'

t.test('createSerials issues unique numbers in one batch, shown once', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const res = await gqlOk(app, CREATE_MANY, { input: { clientId: client.id, count: 500, maxUsageCount: 3, isDemo: true } })
  t.equal(res.createSerials.count, 500)
  const numbers = res.createSerials.serials.map((s: { serialNumber: string }) => s.serialNumber)
  t.equal(new Set(numbers).size, 500)
  t.ok(numbers.every((n: string) => normaliseSerialNumber(n) !== undefined))
  const batches = new Set(res.createSerials.serials.map((s: { serial: { batchId: string } }) => s.serial.batchId))
  t.equal(batches.size, 1)
  const first = res.createSerials.serials[0].serial
  t.match(first, { maxUsageCount: 3, isDemo: true })
  const days = (Date.parse(first.expiresAt) - Date.now()) / 86_400_000
  t.ok(days > 13.9 && days <= 14, 'demo serials expire after 14 days')

  const [row] = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from serials where client_id = ${client.id}`)
  t.equal(Number(row?.n), 500)
  const [events] = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from outbox where client_id = ${client.id} and type = 'serial.created'`)
  t.equal(Number(events?.n), 500, 'a serial.created event per serial')
  const [stored] = await queryRows<{ dump: string }>(app.deps.database.db, sql`select string_agg(number_hash || number_enc || number_tail, '') as dump from serials where client_id = ${client.id}`)
  t.notOk(stored?.dump.includes(normaliseSerialNumber(numbers[0])!), 'no number is stored in clear')
})

t.test('createSerials with an idempotency key: racing retries make one batch', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const input = { clientId: client.id, count: 50, idempotencyKey: 'order-991' }
  const results = await Promise.all(Array.from({ length: 5 }, () => gql(app, CREATE_MANY, { input })))
  t.ok(results.every((r) => !r.errors), 'every retry succeeds')
  const numbers = new Set(results.map((r) => r.data?.createSerials.serials[0].serialNumber))
  t.equal(numbers.size, 1, 'every retry sees the same serial numbers')
  const [row] = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from serials where client_id = ${client.id}`)
  t.equal(Number(row?.n), 50, 'one batch written')
  const other = await gql(app, CREATE_MANY, { input: { ...input, count: 51 } })
  t.equal(other.errors?.[0]?.extensions.code, 'CONFLICT')
})

t.test('FEATURE_BULK_OPERATIONS=false answers FEATURE_DISABLED', async (t) => {
  const app = await build(t, { env: { FEATURE_BULK_OPERATIONS: 'false' } })
  const client = await createClient(app)
  const res = await gql(app, CREATE_MANY, { input: { clientId: client.id, count: 2 } })
  t.match(res.errors?.[0]?.extensions, { code: 'FEATURE_DISABLED', statusCode: 403 })
})

t.test('10,000 serials in one call', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const res = await gqlOk(app, 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count } }', { input: { clientId: client.id, count: 10_000 } })
  t.equal(res.createSerials.count, 10_000)
  const [row] = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from serials where client_id = ${client.id}`)
  t.equal(Number(row?.n), 10_000)
})
