import { sql } from 'drizzle-orm'
import t from 'tap'
import { eventTopic } from '../../src/events/domain-events.ts'
import { queryRows } from '../../src/infra/database.ts'
import { build, createClient, createSerial, gqlOk } from '../helper.ts'

const RECORD = 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { recorded code usageEvent { id serialId deviceId kind quantity feature recordedAt seq } } }'

async function usageRows (app: Awaited<ReturnType<typeof build>>, serialId: string) {
  return queryRows<{ id: string, quantity: number }>(app.deps.database.db, sql`select id, quantity from usage_events where serial_id = ${serialId}`)
}

t.test('usage is validated first, stored with its outbox event, then acknowledged', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })

  const heard: Array<{ id: number, payload: { id: string, seq: number, recordedAt: string } }> = []
  t.teardown(await app.deps.bus.subscribe(eventTopic('usage.recorded', client.id), (event) => { heard.push(event as typeof heard[number]) }))
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc-1', quantity: 5, feature: 'render' } })
  t.equal(res.statusCode, 201)
  const body = res.json()
  t.match(body, { recorded: true, code: 'VALID', usageEvent: { serialId: serial.id, deviceId: 'pc-1', kind: 'USAGE', quantity: 5, feature: 'render' } })
  t.notOk('ip' in body.usageEvent, 'the caller IP is stored but not echoed')

  const rows = await usageRows(app, serial.id)
  t.equal(rows.length, 1, 'stored before the answer')
  // No webhook wants it: the writer publishes the event itself after the commit (no relay is
  // running here), then deletes its outbox row.
  const end = Date.now() + 5000
  while (heard.length === 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(heard.length, 1, 'published once, without the relay')
  t.match(heard[0]?.payload, { id: body.usageEvent.id, seq: Number(body.usageEvent.seq), recordedAt: body.usageEvent.recordedAt })
  await app.deps.services.usage.close()
  const outbox = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from outbox where aggregate_id = ${serial.id} and type = 'usage.recorded'`)
  t.equal(Number(outbox[0]?.n), 0, 'its outbox row is gone once published')

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

t.test('usage a webhook wants goes through the relay, which enqueues its delivery', async (t) => {
  // A loopback URL (never called: the delivery worker does not run without background tasks).
  const app = await build(t, { background: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true' } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })
  await gqlOk(app, 'mutation ($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } } }', { i: { clientId: client.id, url: 'http://127.0.0.1:9/usage', events: ['usage.recorded'] } })
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc-1' } })
  t.equal(res.statusCode, 201)
  const [pending] = await queryRows<{ n: string }>(app.deps.database.db, sql`select count(*) as n from outbox where aggregate_id = ${serial.id} and type = 'usage.recorded' and published_at is null`)
  t.equal(Number(pending?.n), 1, 'written unclaimed, for the relay')
  await app.deps.relay.drain()
  const deliveries = await queryRows<{ event_type: string, payload: { id: string } }>(app.deps.database.db, sql`select event_type, payload from webhook_deliveries where event_type = 'usage.recorded' and payload->>'serialId' = ${serial.id}`)
  t.equal(deliveries.length, 1, 'one delivery enqueued')
  t.equal(deliveries[0]?.payload.id, res.json().usageEvent.id)
})

t.test('claimed usage events a writer never published are relayed after the claim times out', async (t) => {
  const app = await build(t, { background: false })
  const clientId = `cli_CLAIM${Date.now()}`
  // As after a crash between the commit and the publish: claimed rows, one old, one fresh.
  await app.deps.database.db.execute(sql`insert into outbox (type, aggregate_id, client_id, payload, published_at, created_at) values
    ('usage.recorded', 'ser_CLAIMOLD', ${clientId}, '{"n": 1}', '-infinity', now() - interval '1 minute'),
    ('usage.recorded', 'ser_CLAIMNEW', ${clientId}, '{"n": 2}', '-infinity', now())`)
  const heard: number[] = []
  t.teardown(await app.deps.bus.subscribe(eventTopic('usage.recorded', clientId), (event) => { heard.push((event as { payload: { n: number } }).payload.n) }))
  t.equal(await app.deps.relay.reclaim(), 1, 'only the row older than the claim timeout is taken back')
  await app.deps.relay.drain()
  const end = Date.now() + 5000
  while (heard.length === 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(heard, [1], 'the stale claim is published; the fresh one is left to its writer')
  const rows = await queryRows<{ aggregate_id: string, published: boolean }>(app.deps.database.db, sql`select aggregate_id, published_at > '-infinity'::timestamptz as published from outbox where client_id = ${clientId} order by id`)
  t.same(rows, [{ aggregate_id: 'ser_CLAIMOLD', published: true }, { aggregate_id: 'ser_CLAIMNEW', published: false }])
})
