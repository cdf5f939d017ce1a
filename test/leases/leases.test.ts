// Floating seats: leases renewed by validations and heartbeats, lapsed leases culled at once when
// another device needs the slot and by the background sweep (one instance at a time), and the
// device limit exact under a storm of activations on two instances while leases lapse.
import t from 'tap'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { queryRows } from '../../src/infra/database.ts'
import { runJob } from '../../src/jobs/schedule.ts'
import { sweepLeasesJob } from '../../src/jobs/sweep-leases.ts'
import { build, buildPair, createClient, createSerial, gqlOk, restValidate } from '../helper.ts'

const CREATE_POLICY = 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }'
const HEARTBEAT = 'mutation ($input: HeartbeatInput!) { heartbeat(input: $input) { alive code leaseExpiresAt } }'

async function floatingSerial (app: FastifyInstance, maxDevices: number) {
  const client = await createClient(app)
  const { createPolicy } = await gqlOk(app, CREATE_POLICY, { input: { name: 'Floating', maxDevices, floating: true, heartbeatSeconds: 60, heartbeatGraceSeconds: 30, entitlements: ['PRO'] } })
  return createSerial(app, client.id, { policyId: createPolicy.id })
}

/** Makes devices' leases lapse now, as if they stopped sending heartbeats long ago. */
async function lapse (app: FastifyInstance, serialId: string, deviceIds: string[]) {
  await app.deps.database.db.execute(sql`update devices set lease_expires_at = now() - interval '1 second'
    where serial_id = ${serialId} and device_id = any(${sql.param(deviceIds)}::text[])`)
}

/** One run of the background sweep on this instance (skipped while another holds its lock). */
const sweepLeases = (app: FastifyInstance) => runJob(sweepLeasesJob(app.deps.services), { db: app.deps.database.db })

async function counts (app: FastifyInstance, serialId: string) {
  const [row] = await queryRows<{ active_devices: number, active: number, culled: number }>(app.deps.database.db, sql`
    select s.active_devices,
      (select count(*)::int from devices d where d.serial_id = s.id and d.active) as active,
      (select count(*)::int from outbox o where o.type = 'device.culled' and o.aggregate_id = s.id) as culled
    from serials s where s.id = ${serialId}`)
  return { activeDevices: Number(row!.active_devices), active: Number(row!.active), culled: Number(row!.culled) }
}

const heartbeat = (app: FastifyInstance, body: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/api/v1/serials/heartbeat', payload: body }).then((r) => ({ status: r.statusCode, body: r.json() as Record<string, any> }))

t.test('validation and heartbeat renew a lease; a lapsed lease is culled at once for a new device', async (t) => {
  const app = await build(t)
  const serial = await floatingSerial(app, 2)
  const before = Date.now()
  const first = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  t.equal(first.body.code, 'VALID')
  const lease = new Date(first.body.leaseExpiresAt).getTime()
  t.ok(lease >= before + 90_000 && lease <= Date.now() + 90_000, 'lease = now + heartbeatSeconds + grace')
  t.same(first.body.entitlements, ['PRO'])
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'b' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'c' })).body.code, 'TOO_MANY_DEVICES')

  const rest = await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  t.equal(rest.status, 200)
  t.equal(rest.body.alive, true)
  t.equal(rest.body.code, 'VALID')
  t.ok(new Date(rest.body.leaseExpiresAt).getTime() >= lease, 'renewed')
  const viaGql = (await gqlOk(app, HEARTBEAT, { input: { serialNumber: serial.serialNumber, deviceId: 'b' } }, null)).heartbeat
  t.equal(viaGql.alive, true)
  t.ok(viaGql.leaseExpiresAt)

  // Renewals answered from memory reach PostgreSQL with the batched flush.
  await app.deps.recorder.flush()
  const [stored] = await queryRows<{ lease: Date | string }>(app.deps.database.db, sql`select lease_expires_at as lease from devices where serial_id = ${serial.id} and device_id = 'a'`)
  t.ok(new Date(stored!.lease).getTime() >= lease, 'the renewed lease is stored')

  await lapse(app, serial.id, ['a'])
  // The lapsed slot is only freed when needed: a new device culls it inside its activation.
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'c' })).body.code, 'VALID')
  t.same(await counts(app, serial.id), { activeDevices: 2, active: 2, culled: 1 })
  const late = await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  t.same([late.body.alive, late.body.code, late.body.leaseExpiresAt], [false, 'TOO_MANY_DEVICES', null], 'the culled device lost its slot')
  t.equal((await heartbeat(app, { serialNumber: 'nope', deviceId: 'a' })).body.code, 'INVALID_FORMAT')
  t.equal((await heartbeat(app, { deviceId: 'a' })).status, 400)
})

t.test('a node-locked serial: heartbeats answer alive without a lease, and nothing is culled', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })).body.code, 'VALID')
  const hb = await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  t.same(hb.body, { alive: true, code: 'VALID', leaseExpiresAt: null })
  await sweepLeases(app)
  t.same(await counts(app, serial.id), { activeDevices: 1, active: 1, culled: 0 })
})

t.test('the background sweep culls a lapsed lease exactly once, with two instances sweeping', async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const serial = await floatingSerial(a, 3)
  for (const d of ['x', 'y', 'z']) t.equal((await restValidate(a, { serialNumber: serial.serialNumber, deviceId: d })).body.code, 'VALID')
  // Warm the other instance's memory of y's lease.
  t.equal((await heartbeat(b, { serialNumber: serial.serialNumber, deviceId: 'y' })).body.alive, true)
  await lapse(a, serial.id, ['x', 'y'])
  await Promise.all([sweepLeases(a), sweepLeases(b), sweepLeases(a), sweepLeases(b)])
  await sweepLeases(a)
  t.same(await counts(a, serial.id), { activeDevices: 1, active: 1, culled: 2 }, 'two slots freed, one event each')
  // Both instances forgot the culled slots: y is no longer answered from memory.
  for (const app of [a, b]) {
    const r = await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'z' })
    t.equal(r.body.alive, true)
  }
  const y = await heartbeat(b, { serialNumber: serial.serialNumber, deviceId: 'y' })
  t.equal(y.body.code, 'VALID', 'a culled device takes a free slot again')
  t.same(await counts(a, serial.id), { activeDevices: 2, active: 2, culled: 2 })
  const events = await queryRows<{ device: string }>(a.deps.database.db, sql`select payload->>'deviceId' as device from outbox where type = 'device.culled' and aggregate_id = ${serial.id} order by device`)
  t.same(events.map((e) => e.device), ['x', 'y'])
})

t.test('200 concurrent activations on two instances while leases lapse: exactly the free seats are granted', async (t) => {
  const [a, b] = await buildPair(t)
  const serial = await floatingSerial(a, 10)
  const holders = Array.from({ length: 10 }, (_, i) => `holder-${i}`)
  for (const d of holders) t.equal((await restValidate(a, { serialNumber: serial.serialNumber, deviceId: d })).body.code, 'VALID')
  await lapse(a, serial.id, holders.slice(0, 4))

  const storm = Array.from({ length: 200 }, (_, i) => restValidate(i % 2 === 0 ? a : b, { serialNumber: serial.serialNumber, deviceId: `new-${i}` }))
  // The background sweep runs on both instances in the middle of the storm.
  const sweeps = [sweepLeases(a), sweepLeases(b)]
  const results = await Promise.all(storm)
  await Promise.all(sweeps)
  const codes = results.map((r) => r.body.code as string)
  t.same([...new Set(codes)].sort(), ['TOO_MANY_DEVICES', 'VALID'])
  t.equal(codes.filter((c) => c === 'VALID').length, 4, 'exactly the four lapsed seats were granted')
  t.same(await counts(a, serial.id), { activeDevices: 10, active: 10, culled: 4 }, 'count, rows and events agree')
  // The six live holders kept their seats on both instances.
  for (const d of holders.slice(4)) {
    t.equal((await restValidate(b, { serialNumber: serial.serialNumber, deviceId: d })).body.code, 'VALID', `${d} kept its seat`)
  }
})

t.test('heartbeats share the per-IP validation budget (REST and GraphQL)', async (t) => {
  const app = await build(t, { env: { VALIDATE_RATE_LIMIT: '3' } })
  const serial = await floatingSerial(app, 1)
  t.equal((await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'a' })).status, 200)
  t.equal((await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'a' })).status, 200)
  t.equal((await gqlOk(app, HEARTBEAT, { input: { serialNumber: serial.serialNumber, deviceId: 'a' } }, null)).heartbeat.alive, true)
  t.equal((await heartbeat(app, { serialNumber: serial.serialNumber, deviceId: 'a' })).status, 429, 'the fourth public call in the minute is refused')
})
