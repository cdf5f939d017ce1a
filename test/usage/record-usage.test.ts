import { sql } from 'drizzle-orm'
import t from 'tap'
import { queryRows } from '../../src/platform/database.ts'
import { build, createClient, createSerial, gqlOk } from '../helper.ts'

const RECORD = 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { recorded code usageEvent { id serialId deviceId kind quantity feature recordedAt seq } } }'

async function usageRows (app: Awaited<ReturnType<typeof build>>, serialId: string) {
  return queryRows<{ id: string, quantity: number }>(app.deps.database.db, sql`select id, quantity from usage_events where serial_id = ${serialId}`)
}

t.test('usage is validated first, stored with its outbox event, then acknowledged', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })

  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc-1', quantity: 5, feature: 'render' } })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.match(body, { recorded: true, code: 'VALID', usageEvent: { serialId: serial.id, deviceId: 'pc-1', kind: 'USAGE', quantity: 5, feature: 'render' } })
  t.notOk('ip' in body.usageEvent, 'the caller IP is stored but not echoed')

  const rows = await usageRows(app, serial.id)
  t.equal(rows.length, 1, 'stored before the answer')
  const outbox = await queryRows<{ type: string, payload: { id: string } }>(app.deps.database.db, sql`select type, payload from outbox where aggregate_id = ${serial.id} and type = 'usage.recorded'`)
  t.equal(outbox.length, 1, 'one usage.recorded event in the outbox')
  t.equal(outbox[0]?.payload.id, body.usageEvent.id)

  const viaGraphql = await gqlOk(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'pc-1' } }, null)
  t.match(viaGraphql.recordUsage, { recorded: true, code: 'VALID', usageEvent: { quantity: 1, feature: null } })
  t.ok(Number(viaGraphql.recordUsage.usageEvent.seq) > Number(body.usageEvent.seq), 'seq increases')

  const otherDevice = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc-2' } })
  t.equal(otherDevice.statusCode, 200)
  t.same(otherDevice.json(), { recorded: false, code: 'TOO_MANY_DEVICES', usageEvent: null })
  t.equal((await usageRows(app, serial.id)).length, 2, 'a refused usage is not stored')
})

t.test('a new device takes a free slot through recordUsage, as in validation', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 2 })
  const res = await gqlOk(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'fresh' } }, null)
  t.equal(res.recordUsage.code, 'VALID')
  const [row] = await queryRows<{ active_devices: number }>(app.deps.database.db, sql`select active_devices from serials where id = ${serial.id}`)
  t.equal(Number(row?.active_devices), 1)
})

t.test('bad usage input is a clear error and writes nothing', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  for (const [payload, field] of [
    [{ serialNumber: serial.serialNumber, deviceId: 'a', quantity: 0 }, 'quantity'],
    [{ serialNumber: serial.serialNumber, deviceId: 'a', quantity: -3 }, 'quantity'],
    [{ serialNumber: serial.serialNumber, deviceId: 'a', quantity: 10_000_000 }, 'quantity'],
    [{ serialNumber: serial.serialNumber, deviceId: 'a', quantity: 1.5 }, 'quantity'],
    [{ serialNumber: serial.serialNumber, deviceId: 'a', feature: 'f'.repeat(65) }, 'feature'],
    [{ serialNumber: serial.serialNumber }, 'deviceId']
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload })
    t.equal(res.statusCode, 400)
    t.match(res.json(), { code: 'VALIDATION_ERROR', errors: [{ field }] })
  }
  t.equal((await usageRows(app, serial.id)).length, 0)
})

t.test('idempotency key: retries, even racing ones, store one event and replay the first answer', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const send = (key: string, quantity = 2) => app.inject({
    method: 'POST', url: '/api/v1/serials/usage', headers: { 'idempotency-key': key }, payload: { serialNumber: serial.serialNumber, deviceId: 'pc', quantity }
  })
  const results = await Promise.all(Array.from({ length: 20 }, () => send('job-1')))
  t.ok(results.every((r) => r.statusCode === 201), 'every retry answers 201')
  const ids = new Set(results.map((r) => r.json().usageEvent.id))
  t.equal(ids.size, 1, 'every retry sees the same event')
  t.equal((await usageRows(app, serial.id)).length, 1, 'one row written')

  const reused = await send('job-1', 9)
  t.equal(reused.statusCode, 409)
  t.match(reused.json(), { code: 'CONFLICT' }, 'the same key for another request is a conflict')

  const gqlKey = await gqlOk(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'pc', idempotencyKey: 'job-2' } }, null)
  const gqlRetry = await gqlOk(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'pc', idempotencyKey: 'job-2' } }, null)
  t.equal(gqlRetry.recordUsage.usageEvent.id, gqlKey.recordUsage.usageEvent.id)
  t.equal((await usageRows(app, serial.id)).length, 2)
})
