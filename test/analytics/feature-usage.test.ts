// usageByFeature: usage events and quantity per feature from the usage log, with the seq the
// figures run to (where a page's live updates go on from), under the analytics tenant rules.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { newId } from '../../src/kernel/ids.ts'
import { build, createApiKey, createClient, createSerial, gql, gqlOk } from '../helper.ts'

const BY_FEATURE = 'query ($c: ID, $h: Int) { usageByFeature(clientId: $c, hours: $h) { since throughSeq features { feature events quantity } } }'

t.test('usageByFeature: per feature, no feature as null, the window, and throughSeq', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const usage = async (quantity: number, feature?: string) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'd1', quantity, feature } })
    t.equal(res.statusCode, 201)
    return (res.json() as { usageEvent: { seq: number } }).usageEvent
  }
  await usage(5, 'export-pdf')
  await usage(2, 'export-pdf')
  await usage(4, 'print')
  await usage(1)
  const last = await usage(3)
  // Older than the default 24 hours: only in a wider window.
  await app.deps.database.db.execute(sql`insert into usage_events (id, serial_id, client_id, device_id, quantity, feature, recorded_at)
    values (${newId('use')}, ${serial.id}, ${client.id}, 'd1', 100, 'sync', now() - interval '30 hours')`)

  const answer = (await gqlOk(app, BY_FEATURE, { c: client.id })).usageByFeature
  t.same(answer.features, [
    { feature: 'export-pdf', events: 2, quantity: 7 },
    { feature: null, events: 2, quantity: 4 },
    { feature: 'print', events: 1, quantity: 4 }
  ], 'largest quantity first (then most events); events without a feature under null')
  t.ok(Math.abs(new Date(answer.since).getTime() - (Date.now() - 24 * 3_600_000)) < 60_000, 'the window starts 24 hours ago')
  t.ok(answer.throughSeq >= last.seq, 'throughSeq covers the newest event counted')
  t.equal(typeof last.seq, 'number')

  const wider = (await gqlOk(app, BY_FEATURE, { c: client.id, h: 48 })).usageByFeature
  t.same(wider.features[0], { feature: 'sync', events: 1, quantity: 100 }, 'a 48-hour window holds the older event')

  // A new event is past throughSeq: a page adds it once on top of the figures.
  const next = await usage(1, 'print')
  t.ok(next.seq > answer.throughSeq)
  const again = (await gqlOk(app, BY_FEATURE, { c: client.id })).usageByFeature
  t.ok(again.throughSeq >= next.seq)
  t.same(again.features.find((f: { feature: string | null }) => f.feature === 'print'), { feature: 'print', events: 2, quantity: 5 })
})

t.test('usageByFeature: tenant rules and bounds', async (t) => {
  const app = await build(t, { background: false })
  const mine = await createClient(app)
  const other = await createClient(app)
  const mySerial = await createSerial(app, mine.id)
  const otherSerial = await createSerial(app, other.id)
  for (const [serialNumber, feature] of [[mySerial.serialNumber, 'mine'], [otherSerial.serialNumber, 'theirs']]) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber, deviceId: 'd', quantity: 2, feature } })
    t.equal(res.statusCode, 201)
  }
  const manager = await createApiKey(app, 'MANAGER', mine.id)
  const auditor = await createApiKey(app, 'AUDITOR')
  const features = (data: { usageByFeature: { features: Array<{ feature: string | null }> } }) => data.usageByFeature.features.map((f) => f.feature)

  t.same(features(await gqlOk(app, BY_FEATURE, {}, manager)), ['mine'], 'a MANAGER without clientId: its own client')
  t.same(features(await gqlOk(app, BY_FEATURE, { c: mine.id }, manager)), ['mine'])
  t.match((await gql(app, BY_FEATURE, { c: other.id }, manager)).errors?.[0]?.extensions, { code: 'NOT_FOUND' })
  t.same(features(await gqlOk(app, BY_FEATURE, { c: other.id }, auditor)), ['theirs'], 'an AUDITOR reads any client')
  const all = features(await gqlOk(app, BY_FEATURE, {}))
  t.ok(all.includes('mine') && all.includes('theirs'), 'an ADMIN without clientId: all clients')
  t.ok(features(await gqlOk(app, BY_FEATURE, {}, auditor)).includes('theirs'), 'an AUDITOR too')

  for (const h of [0, 169]) {
    t.match((await gql(app, BY_FEATURE, { c: mine.id, h })).errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'hours', message: 'must be between 1 and 168' }] }, `hours: ${h} refused`)
  }
  t.match((await gql(app, BY_FEATURE, { c: mine.id }, null)).errors?.[0]?.extensions, { code: 'AUTHENTICATION_ERROR' })
})
