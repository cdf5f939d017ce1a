// The one-statement activation (src/domain/validation/activation-statement.ts) when the same device wins a
// race against it: another transaction inserts the device between the statement's snapshot and
// its insert. The statement must abort as a whole: no increment left behind, no outbox row, and
// the validation path still answers VALID through the transaction. A real second connection is
// needed to hold the other transaction open, so this runs on PostgreSQL.
import { sql } from 'drizzle-orm'
import postgres from 'postgres'
import t from 'tap'
import { activateInOneStatement } from '../../src/domain/validation/activation-statement.ts'
import { queryRows } from '../../src/infra/database.ts'
import { newId } from '../../src/kernel/ids.ts'
import { build, createClient, createSerial, databaseUrl, restValidate } from '../helper.ts'

if (!databaseUrl && process.env.CI === 'true') throw new Error('activation race test needs TEST_DATABASE_URL')

t.test('a statement that loses the race for its own device changes nothing', { skip: databaseUrl ? false : 'needs TEST_DATABASE_URL (two connections)' }, async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 3 })
  const db = app.deps.database.db
  const counts = async () => {
    const [row] = await queryRows<{ active_devices: number, devices: string, events: string }>(db, sql`
      select s.active_devices,
        (select count(*) from devices d where d.serial_id = s.id and d.active) as devices,
        (select count(*) from outbox o where o.aggregate_id = s.id and o.type = 'device.activated') as events
      from serials s where s.id = ${serial.id}`)
    return { counter: Number(row!.active_devices), devices: Number(row!.devices), events: Number(row!.events) }
  }

  const other = postgres(databaseUrl!, { max: 1, onnotice: () => {} })
  t.teardown(() => other.end({ timeout: 1 }))
  let commit!: () => void
  const committed = new Promise<void>((resolve) => { commit = resolve })
  let inserted!: () => void
  const insertedRow = new Promise<void>((resolve) => { inserted = resolve })
  // The rival: inserts the same device, active, and holds its transaction open.
  const rival = other.begin(async (tx) => {
    await tx`insert into devices (id, serial_id, device_id, active, first_seen_at, last_seen_at)
      values (${newId('dev')}, ${serial.id}, 'racer', true, now(), now())`
    inserted()
    await committed
  })
  await insertedRow
  // The statement's snapshot cannot see the rival's row: it increments, then waits on the
  // unique key until the rival commits, and then finds the row active.
  const attempt = activateInOneStatement(db, { serialId: serial.id, deviceId: 'racer', id: newId('dev'), info: null, now: new Date(), lease: null })
  // Wait until PostgreSQL shows the statement blocked on the rival's row, so the race is real.
  const end = Date.now() + 10_000
  while (true) {
    const [waiting] = await queryRows<{ n: string }>(db, sql`select count(*) as n from pg_stat_activity
      where wait_event_type = 'Lock' and query like '%insert into devices%' and query like '%with s as%'`)
    if (Number(waiting!.n) > 0) break
    if (Date.now() > end) throw new Error('the statement never waited on the rival\'s row')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  commit()
  await rival
  t.same(await attempt, {}, 'the statement reports that it took nothing')
  t.same(await counts(), { counter: 0, devices: 1, events: 0 }, 'its increment and its event were undone with it (the rival wrote neither)')

  // Through the service: the device already holds its slot, so validation answers VALID without
  // taking a second one.
  const res = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'racer' })
  t.equal(res.body.code, 'VALID')
  t.same(await counts(), { counter: 0, devices: 1, events: 0 }, 'no second slot for the same device')

  const fresh = await activateInOneStatement(db, { serialId: serial.id, deviceId: 'newcomer', id: newId('dev'), info: null, now: new Date(), lease: null })
  t.equal(fresh.taken?.activeDevices, 1, 'a new device still takes a slot in one statement')
  t.same(await counts(), { counter: 1, devices: 2, events: 1 })
})
