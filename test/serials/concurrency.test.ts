// The device limit under concurrency, across two instances sharing one database (and Redis when
// configured): 200 distinct devices race for 5 slots.
import t from 'tap'
import { sql } from 'drizzle-orm'
import { queryRows } from '../../src/infra/database.ts'
import { build, buildPair, createClient, createSerial, gqlOk, restValidate, until } from '../helper.ts'

t.test('200 concurrent new devices on two instances: exactly 5 VALID', async (t) => {
  const [a, b] = await buildPair(t)
  const client = await createClient(a)
  const serial = await createSerial(a, client.id, { maxUsageCount: 5 })

  const results = await Promise.all(Array.from({ length: 200 }, (_, i) =>
    restValidate(i % 2 === 0 ? a : b, { serialNumber: serial.serialNumber, deviceId: `device-${i}` })))
  const codes = results.map((r) => r.body.code as string)
  t.same([...new Set(codes)].sort(), ['TOO_MANY_DEVICES', 'VALID'], 'no other answers')
  t.equal(codes.filter((c) => c === 'VALID').length, 5, 'five devices got a slot')
  t.equal(codes.filter((c) => c === 'TOO_MANY_DEVICES').length, 195, 'the rest were refused')

  const [row] = await queryRows<{ active_devices: number, devices: string }>(a.deps.database.db, sql`
    select s.active_devices, (select count(*) from devices d where d.serial_id = s.id and d.active) as devices
    from serials s where s.id = ${serial.id}`)
  t.equal(Number(row?.active_devices), 5, 'counter says 5')
  t.equal(Number(row?.devices), 5, 'five active device rows')

  const winners = results.map((r, i) => r.body.code === 'VALID' ? i : -1).filter((i) => i >= 0)
  for (const i of winners) {
    const again = await restValidate(i % 2 === 0 ? b : a, { serialNumber: serial.serialNumber, deviceId: `device-${i}` })
    t.equal(again.body.code, 'VALID', `device-${i} stays valid on the other instance`)
  }
})

t.test('the same new device racing itself takes one slot', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 3 })
  const results = await Promise.all(Array.from({ length: 30 }, () => restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'same-device' })))
  t.ok(results.every((r) => r.body.code === 'VALID'))
  const [row] = await queryRows<{ active_devices: number }>(app.deps.database.db, sql`select active_devices from serials where id = ${serial.id}`)
  t.equal(Number(row?.active_devices), 1)
})

t.test('new devices racing themselves on two instances: counter, rows and events agree', async (t) => {
  const [a, b] = await buildPair(t)
  const client = await createClient(a)
  const serial = await createSerial(a, client.id, { maxUsageCount: 4 })
  // 6 devices, each sent 10 times at once through both instances: 4 get the slots, each once.
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) =>
    restValidate(i % 2 === 0 ? a : b, { serialNumber: serial.serialNumber, deviceId: `racer-${i % 6}` })))
  const winners = new Set(results.filter((r) => r.body.code === 'VALID').map((_, i) => i))
  t.ok(winners.size > 0)
  t.same([...new Set(results.map((r) => r.body.code as string))].sort(), ['TOO_MANY_DEVICES', 'VALID'])
  const [row] = await queryRows<{ active_devices: number, devices: string, events: string }>(a.deps.database.db, sql`
    select s.active_devices,
      (select count(*) from devices d where d.serial_id = s.id and d.active) as devices,
      (select count(*) from outbox o where o.aggregate_id = s.id and o.type = 'device.activated') as events
    from serials s where s.id = ${serial.id}`)
  t.equal(Number(row?.active_devices), 4, 'counter says 4')
  t.equal(Number(row?.devices), 4, 'four active device rows')
  t.equal(Number(row?.events), 4, 'one device.activated event per slot taken')
  const again = await Promise.all(Array.from({ length: 6 }, (_, i) => restValidate(b, { serialNumber: serial.serialNumber, deviceId: `racer-${i}` })))
  t.equal(again.filter((r) => r.body.code === 'VALID').length, 4, 'the four holders stay valid, the others are refused')
})

// The revoking instance answers REVOKED at once; the other one as soon as the invalidation has
// crossed the bus (one Redis round trip). "At once" on the other instance too was asserted here
// before and failed now and then on every version: its L1 copy can be read before the message is.
t.test('revoke on one instance: REVOKED there at once, on the other within the bus delay', async (t) => {
  const [a, b] = await buildPair(t)
  const client = await createClient(a)
  const serial = await createSerial(a, client.id)
  // Warm both instances' caches with a known, valid device first.
  t.equal((await restValidate(a, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'VALID')
  t.equal((await restValidate(b, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'VALID')
  await gqlOk(b, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: serial.id, reason: 'chargeback' } })
  t.equal((await restValidate(b, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'REVOKED')
  await until(async () => (await restValidate(a, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code === 'REVOKED', 'the other instance to answer REVOKED', 2000)
  t.pass('the other instance answers REVOKED')
})
