// Validation counts per client and minute (validation_client_minutely): written by the flusher next
// to the hourly rollups, pruned after 48 hours, read by validationsPerMinute with the tenant rules of
// the other analytics queries.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { queryRows } from '../../src/infra/database.ts'
import type { SerialState } from '../../src/domain/cached-state.ts'
import { createValidationRecorder } from '../../src/domain/validation/validation-recorder.ts'
import { build, createApiKey, createClient, createSerial, gql, gqlOk, restValidate } from '../helper.ts'

const PER_MINUTE = 'query ($c: ID, $m: Int) { validationsPerMinute(clientId: $c, minutes: $m) { minute code count } }'

type Row = { minute: string, code: string, count: number }
const byCode = (rows: Row[]) => rows.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.code]: (acc[r.code] ?? 0) + r.count }), {})

t.test('validationsPerMinute counts the validations of the last minutes, by code', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxDevices: 2 })
  const revoked = await createSerial(app, client.id)
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { input: { id: revoked.id, reason: 'test' } })
  for (const device of ['d1', 'd2', 'd3', 'd1']) await restValidate(app, { serialNumber: serial.serialNumber, deviceId: device }) // 3 VALID, 1 TOO_MANY
  await restValidate(app, { serialNumber: revoked.serialNumber, deviceId: 'd1' })

  t.same((await gqlOk(app, PER_MINUTE, { c: client.id })).validationsPerMinute, [], 'nothing before the flush')
  await app.deps.recorder.flush()
  const rows: Row[] = (await gqlOk(app, PER_MINUTE, { c: client.id })).validationsPerMinute
  t.same(byCode(rows), { VALID: 3, TOO_MANY_DEVICES: 1, REVOKED: 1 })
  const now = Date.now()
  for (const r of rows) {
    const minute = new Date(r.minute).getTime()
    t.equal(minute % 60_000, 0, 'minutes start on the minute')
    t.ok(minute <= now && minute > now - 3 * 60_000, 'in the last minutes')
  }
  t.same(rows.map((r) => [r.minute, r.code]), [...rows].sort((a, b) => a.minute.localeCompare(b.minute) || a.code.localeCompare(b.code)).map((r) => [r.minute, r.code]), 'ordered by minute, then code')

  // The minute table sums to the hourly rollup.
  const db = app.deps.database.db
  const [hourly] = await queryRows<{ n: string }>(db, sql`select coalesce(sum(count), 0) as n from validation_client_hourly where client_id = ${client.id}`)
  t.equal(Number(hourly?.n), 5, 'the hourly rollup has the same 5 validations')

  // A second flush adds to the same rows.
  await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'd2' })
  await app.deps.recorder.flush()
  t.equal(byCode((await gqlOk(app, PER_MINUTE, { c: client.id, m: 1440 })).validationsPerMinute).VALID, 4)
})

t.test('the flusher splits counts by minute, sums them by hour, and prunes minutes older than 48 hours', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const created = await createSerial(app, client.id)
  const db = app.deps.database.db
  const errors: unknown[] = []
  const recorder = createValidationRecorder(db, (error) => errors.push(error))
  const serial = { id: created.id, clientId: client.id } as SerialState
  // Three validations either side of 10:00 UTC two hours ago, and one in another hour.
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000
  recorder.validation(serial, null, 'VALID', new Date(hour - 1_000))
  recorder.validation(serial, null, 'VALID', new Date(hour + 1_000))
  recorder.validation(serial, null, 'VALID', new Date(hour + 59_000))
  recorder.validation(serial, null, 'EXPIRED', new Date(hour + 61_000))
  // A row three days old: the flush prunes it.
  await db.execute(sql`insert into validation_client_minutely (client_id, minute, code, count) values (${client.id}, now() - interval '3 days', 'VALID', 9)`)
  await recorder.flush()
  t.same(errors, [])

  const minutes = await queryRows<{ minute: Date | string, code: string, count: number }>(db, sql`select minute, code, count from validation_client_minutely where client_id = ${client.id} order by minute, code`)
  t.same(minutes.map((m) => [new Date(m.minute).getTime() - hour, m.code, Number(m.count)]), [
    [-60_000, 'VALID', 1],
    [0, 'VALID', 2],
    [60_000, 'EXPIRED', 1]
  ], 'one row per client, minute and code; the 3-day-old row is gone')
  const hours = await queryRows<{ hour: Date | string, code: string, count: number }>(db, sql`select hour, code, count from validation_stats where serial_id = ${created.id} order by hour, code`)
  t.same(hours.map((h) => [new Date(h.hour).getTime() - hour, h.code, Number(h.count)]), [
    [-3_600_000, 'VALID', 1],
    [0, 'EXPIRED', 1],
    [0, 'VALID', 2]
  ], 'validation_stats still holds one row per serial, hour and code')
  const clientHours = await queryRows<{ n: string }>(db, sql`select sum(count) as n from validation_client_hourly where client_id = ${client.id}`)
  t.equal(Number(clientHours[0]?.n), 4)

  // The minutes of two hours ago are inside a 180-minute window and outside a 60-minute one.
  t.equal((await gqlOk(app, PER_MINUTE, { c: client.id })).validationsPerMinute.length, 0)
  t.same(byCode((await gqlOk(app, PER_MINUTE, { c: client.id, m: 180 })).validationsPerMinute), { VALID: 3, EXPIRED: 1 })
})

t.test('validationsPerMinute: tenant rules and bounds', async (t) => {
  const app = await build(t, { background: false })
  const mine = await createClient(app)
  const other = await createClient(app)
  const mySerial = await createSerial(app, mine.id)
  const otherSerial = await createSerial(app, other.id)
  await restValidate(app, { serialNumber: mySerial.serialNumber, deviceId: 'a' })
  await restValidate(app, { serialNumber: otherSerial.serialNumber, deviceId: 'a' })
  await restValidate(app, { serialNumber: otherSerial.serialNumber, deviceId: 'a' })
  await app.deps.recorder.flush()
  const manager = await createApiKey(app, 'MANAGER', mine.id)
  const auditor = await createApiKey(app, 'AUDITOR')

  t.same(byCode((await gqlOk(app, PER_MINUTE, {}, manager)).validationsPerMinute), { VALID: 1 }, 'a MANAGER without clientId: its own client')
  t.same(byCode((await gqlOk(app, PER_MINUTE, { c: mine.id }, manager)).validationsPerMinute), { VALID: 1 })
  t.match((await gql(app, PER_MINUTE, { c: other.id }, manager)).errors?.[0]?.extensions, { code: 'NOT_FOUND' }, 'another client is not found')
  t.same(byCode((await gqlOk(app, PER_MINUTE, { c: other.id }, auditor)).validationsPerMinute), { VALID: 2 }, 'an AUDITOR reads any client')
  // All clients: at least these three (on a shared database other test files add theirs).
  const all = byCode((await gqlOk(app, PER_MINUTE, {})).validationsPerMinute)
  t.ok((all.VALID ?? 0) >= 3, 'an ADMIN without clientId: all clients summed')
  t.ok((byCode((await gqlOk(app, PER_MINUTE, {}, auditor)).validationsPerMinute).VALID ?? 0) >= 3, 'an AUDITOR too')
  t.match((await gql(app, PER_MINUTE, { c: 'cli_doesnotexist' })).errors?.[0]?.extensions, { code: 'NOT_FOUND' })

  for (const m of [0, -5, 1441]) {
    t.match((await gql(app, PER_MINUTE, { c: mine.id, m })).errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'minutes', message: 'must be between 1 and 1440' }] }, `minutes: ${m} refused`)
  }
  t.ok((await gqlOk(app, PER_MINUTE, { c: mine.id, m: 1440 })).validationsPerMinute, '1440 accepted')
  t.match((await gql(app, PER_MINUTE, { c: mine.id }, null)).errors?.[0]?.extensions, { code: 'AUTHENTICATION_ERROR' })
})
