// A usage call with an idempotency key (REST Idempotency-Key, GraphQL idempotencyKey): the key is
// checked before the validation, which may activate the device. A retry replays the first answer
// and a call reusing the key for another request answers CONFLICT; neither takes a seat nor spends
// an activation of a capped policy. Racing calls with one key and different bodies: one wins, the
// others CONFLICT, exactly one device is activated.
import { sql } from 'drizzle-orm'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { queryRows } from '../../src/infra/database.ts'
import { build, buildPair, createClient, createSerial, gql, gqlOk } from '../helper.ts'

const RECORD = 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { recorded code usageEvent { id deviceId } } }'

const rest = (app: FastifyInstance, key: string, serialNumber: string, deviceId: string, quantity = 1) => app.inject({
  method: 'POST', url: '/api/v1/serials/usage', headers: { 'idempotency-key': key }, payload: { serialNumber, deviceId, quantity }
})

/** What a call could have changed: seats, activations of the rolling cap, usage rows. */
async function effects (app: FastifyInstance, serialId: string) {
  const db = app.deps.database.db
  const [serial] = await queryRows<{ n: number }>(db, sql`select active_devices as n from serials where id = ${serialId}`)
  const devices = await queryRows<{ device_id: string }>(db, sql`select device_id from devices where serial_id = ${serialId} and active order by device_id`)
  const [activations] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from device_activations where serial_id = ${serialId}`)
  const usage = await queryRows<{ device_id: string }>(db, sql`select device_id from usage_events where serial_id = ${serialId} order by device_id`)
  return { seats: serial?.n, devices: devices.map((d) => d.device_id), activations: activations?.n, usage: usage.map((u) => u.device_id) }
}

t.test('a key reused for another request is CONFLICT with no effect; the same request replays', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxDevices: 5 })

  const first = await rest(app, 'order-1', serial.serialNumber, 'pc-a')
  t.equal(first.statusCode, 201)
  const after = await effects(app, serial.id)
  t.same(after, { seats: 1, devices: ['pc-a'], activations: 0, usage: ['pc-a'] })

  const other = await rest(app, 'order-1', serial.serialNumber, 'pc-b')
  t.equal(other.statusCode, 409, 'REST: another device under the same key')
  t.match(other.json(), { code: 'CONFLICT' })
  const quantity = await rest(app, 'order-1', serial.serialNumber, 'pc-a', 7)
  t.equal(quantity.statusCode, 409, 'REST: another quantity under the same key')
  const graphql = await gql(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'pc-c', idempotencyKey: 'order-1' } }, null)
  t.equal(graphql.errors?.[0]?.extensions.code, 'CONFLICT', 'GraphQL: another device under the same key')
  t.same(await effects(app, serial.id), after, 'no seat taken, no usage stored by the refused calls')

  const replay = await rest(app, 'order-1', serial.serialNumber, 'pc-a')
  t.equal(replay.statusCode, 201)
  t.equal(replay.json().usageEvent.id, first.json().usageEvent.id, 'the retry replays the first answer')
  const gqlReplay = await gqlOk(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: 'pc-a', quantity: 1, idempotencyKey: 'order-1' } }, null)
  t.equal(gqlReplay.recordUsage.usageEvent.id, first.json().usageEvent.id, 'GraphQL with the same key and request replays it too')
  t.same(await effects(app, serial.id), after, 'replays change nothing')
})

t.test('on a capped policy a refused call spends no activation', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const policy = await gqlOk(app, 'mutation ($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', { i: { name: `Capped ${Date.now()}`, maxDevices: 5, maxActivationsPerDay: 2 } })
  const serial = await createSerial(app, client.id, { policyId: policy.createPolicy.id })

  t.equal((await rest(app, 'cap-1', serial.serialNumber, 'd1')).statusCode, 201)
  for (const device of ['d2', 'd3', 'd4']) {
    t.equal((await rest(app, 'cap-1', serial.serialNumber, device)).statusCode, 409, `${device} under the used key: CONFLICT`)
    const res = await gql(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: device, idempotencyKey: 'cap-1' } }, null)
    t.equal(res.errors?.[0]?.extensions.code, 'CONFLICT')
  }
  t.same(await effects(app, serial.id), { seats: 1, devices: ['d1'], activations: 1, usage: ['d1'] }, 'one activation spent, by the first call only')
  const second = await rest(app, 'cap-2', serial.serialNumber, 'd2')
  t.equal(second.statusCode, 201, 'the second activation of the day is still there')
  const third = await rest(app, 'cap-3', serial.serialNumber, 'd3')
  t.match(third.json(), { recorded: false, code: 'TOO_MANY_ACTIVATIONS' }, 'and the cap holds after it')
})

t.test('a refused validation stores no answer under the key: a retry after the fix is recorded', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  await gqlOk(app, 'mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id } }', { i: { id: serial.id } })
  const refused = await rest(app, 'retry-1', serial.serialNumber, 'pc')
  t.match([refused.statusCode, refused.json()], [200, { recorded: false, code: 'SUSPENDED' }])
  await gqlOk(app, 'mutation ($i: ReinstateSerialInput!) { reinstateSerial(input: $i) { id } }', { i: { id: serial.id } })
  const retried = await rest(app, 'retry-1', serial.serialNumber, 'pc')
  t.equal(retried.statusCode, 201, 'the same key, once the serial is back')
  const unknown = await rest(app, 'retry-1', 'ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ', 'pc')
  t.match(unknown.json(), { recorded: false }, 'a number that is no serial answers its validation code, keyed or not')
})

t.test('racing calls with one key and different bodies: one wins, the others CONFLICT, one activation', async (t) => {
  // Two instances on PostgreSQL (one on PGlite): the claim is atomic across instances.
  const [a, b] = await buildPair(t, { background: false })
  const client = await createClient(a)
  const serial = await createSerial(a, client.id, { maxDevices: 50 })

  for (const round of [1, 2, 3]) {
    const key = `race-${round}`
    const calls = Array.from({ length: 12 }, (_, i) => {
      const app = i % 2 === 0 ? a : b
      const device = `r${round}-d${i}`
      return i % 3 === 0
        ? gql(app, RECORD, { input: { serialNumber: serial.serialNumber, deviceId: device, idempotencyKey: key } }, null)
          .then((r) => ({ ok: r.errors === undefined && r.data?.recordUsage.recorded === true, code: r.errors?.[0]?.extensions.code, device }))
        : rest(app, key, serial.serialNumber, device)
          .then((r) => ({ ok: r.statusCode === 201, code: r.statusCode === 409 ? 'CONFLICT' : String(r.statusCode), device }))
    })
    const results = await Promise.all(calls)
    const winners = results.filter((r) => r.ok)
    t.equal(winners.length, 1, `round ${round}: exactly one call wins`)
    t.same(results.filter((r) => !r.ok).map((r) => r.code), Array(11).fill('CONFLICT'), `round ${round}: every other call is CONFLICT`)
    const now = await effects(a, serial.id)
    t.same(now.devices.filter((d) => d.startsWith(`r${round}-`)), [winners[0]!.device], `round ${round}: only the winner's device holds a seat`)
    t.equal(now.seats, round, `round ${round}: one seat more`)
    t.same(now.usage.filter((d) => d.startsWith(`r${round}-`)), [winners[0]!.device], `round ${round}: one usage event`)
  }
})
