// rebuildRollups after USAGE_RETENTION_DAYS dropped old months: the rollups of those months have
// no raw rows left and must survive the rebuild (docs/operations.md, "The rollups stay"); the
// months still held are recomputed. An embedded database of its own, since a rebuild is global.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { rebuildRollups } from '../../src/domain/analytics/rollups.ts'
import { queryRows } from '../../src/infra/database.ts'
import { newId } from '../../src/kernel/ids.ts'
import { build, createClient, createSerial } from '../helper.ts'

t.test('a rebuild keeps the rollups of dropped months and recomputes the rest', async (t) => {
  const app = await build(t, { background: false, embedded: true })
  const db = app.deps.database.db
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const old = new Date(Date.UTC(2025, 0, 15, 10))
  const recent = new Date(Date.now() - 3_600_000)
  const insert = (at: Date, quantity: number, device: string) => db.execute(sql`insert into usage_events (id, serial_id, client_id, device_id, quantity, recorded_at)
    values (${newId('use')}, ${serial.id}, ${client.id}, ${device}, ${quantity}, ${at.toISOString()}::timestamptz)`)
  await insert(old, 5, 'old-pc')
  await insert(recent, 2, 'new-pc')
  await rebuildRollups(db)
  const daily = async () => (await queryRows<{ day: Date | string, quantity: number }>(db, sql`select day, quantity from usage_daily where serial_id = ${serial.id} order by day`))
    .map((r) => [new Date(r.day).toISOString().slice(0, 10), Number(r.quantity)])
  const hourly = async () => Number((await queryRows<{ n: string }>(db, sql`select count(*) as n from usage_client_hourly where client_id = ${client.id}`))[0]!.n)
  const devices = async () => (await queryRows<{ device_id: string }>(db, sql`select device_id from usage_device_days where serial_id = ${serial.id} order by day`)).map((r) => r.device_id)
  const recentDay = recent.toISOString().slice(0, 10)
  t.same(await daily(), [['2025-01-15', 5], [recentDay, 2]], 'both days rolled up')

  // Retention drops January 2025 (here: its raw rows go), then one more event arrives.
  await db.execute(sql`delete from usage_events where recorded_at < '2025-02-01'`)
  await insert(recent, 3, 'new-pc')
  await rebuildRollups(db)
  t.same(await daily(), [['2025-01-15', 5], [recentDay, 5]], 'the dropped month keeps its rollup; the held one is recomputed')
  t.equal(await hourly(), 2, 'hourly rollups of both periods')
  t.same(await devices(), ['old-pc', 'new-pc'], 'device-days of the dropped month kept')

  // With no raw rows at all, a rebuild deletes nothing.
  await db.execute(sql`delete from usage_events`)
  await rebuildRollups(db)
  t.same(await daily(), [['2025-01-15', 5], [recentDay, 5]], 'nothing recomputed, nothing lost')
})
