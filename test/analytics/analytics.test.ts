// Analytics on seeded data with known answers.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { newId } from '../../src/kernel/ids.ts'
import { rebuildRollups } from '../../src/domain/analytics/rollups.ts'
import { queryRows } from '../../src/infra/database.ts'
import { build, createApiKey, createClient, createSerial, gql, gqlOk, restValidate } from '../helper.ts'

const STATS = `query ($id: ID!) { clientStatistics(clientId: $id) {
  clientId serialsTotal serialsByStatus { active suspended revoked expired } activeDevices
  validationsLast24h { code count } usageLast30Days { events quantity } topSerials { serialId maskedNumber events quantity } } }`
const PATTERNS = `query ($clientId: ID, $serialId: ID, $g: Granularity!, $since: DateTime, $until: DateTime) {
  usagePatterns(clientId: $clientId, serialId: $serialId, granularity: $g, since: $since, until: $until) { bucket validations usageEvents quantity distinctDevices } }`

t.test('clientStatistics and usagePatterns on seeded data', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const a = await createSerial(app, client.id, { maxUsageCount: 3 })
  const b = await createSerial(app, client.id)
  const suspended = await createSerial(app, client.id)
  const revoked = await createSerial(app, client.id)
  await gqlOk(app, 'mutation ($input: SuspendSerialInput!) { suspendSerial(input: $input) { id } }', { input: { id: suspended.id } })
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { input: { id: revoked.id, reason: 'test' } })

  for (const device of ['d1', 'd2', 'd3', 'd4']) await restValidate(app, { serialNumber: a.serialNumber, deviceId: device }) // 3 VALID, 1 TOO_MANY
  await restValidate(app, { serialNumber: revoked.serialNumber, deviceId: 'd1' }) // REVOKED
  const usage = async (serialNumber: string, deviceId: string, quantity: number) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber, deviceId, quantity } })
    t.equal(res.statusCode, 201)
  }
  await usage(a.serialNumber, 'd1', 5)
  await usage(a.serialNumber, 'd2', 7)
  await usage(b.serialNumber, 'x', 1)
  await app.deps.recorder.flush()

  // An old event, outside the 30-day window, to prove the window.
  await app.deps.database.db.execute(sql`insert into usage_events (id, serial_id, client_id, device_id, quantity, recorded_at)
    values (${newId('use')}, ${b.id}, ${client.id}, 'x', 100, now() - interval '40 days')`)

  const stats = (await gqlOk(app, STATS, { id: client.id })).clientStatistics
  t.match(stats, {
    clientId: client.id,
    serialsTotal: 4,
    serialsByStatus: { active: 2, suspended: 1, revoked: 1, expired: 0 },
    activeDevices: 4, // a: d1 d2 d3; b: x
    usageLast30Days: { events: 3, quantity: 13 }
  })
  const codes = Object.fromEntries(stats.validationsLast24h.map((v: { code: string, count: number }) => [v.code, v.count]))
  // usage calls validate too: 3 on known devices (VALID) + b's first device activation.
  t.same(codes, { VALID: 3 + 3, TOO_MANY_DEVICES: 1, REVOKED: 1 })
  t.same(stats.topSerials.map((s: { serialId: string, quantity: number, events: number }) => [s.serialId, s.events, s.quantity]), [[a.id, 2, 12], [b.id, 1, 1]])
  t.match(stats.topSerials[0].maskedNumber, /^\*{5}-\*{5}-\*{5}-\*{5}-[0-9A-Z]{5}$/)

  const days = (await gqlOk(app, PATTERNS, { clientId: client.id, g: 'DAY' })).usagePatterns
  t.equal(days.length, 1, 'one day with activity in the last 30 days')
  t.match(days[0], { validations: 8, usageEvents: 3, quantity: 13, distinctDevices: 3 })
  t.equal(new Date(days[0].bucket).getUTCHours(), 0, 'day buckets start at midnight UTC')

  const bySerial = (await gqlOk(app, PATTERNS, { serialId: a.id, g: 'HOUR' })).usagePatterns
  t.equal(bySerial.length, 1)
  t.match(bySerial[0], { usageEvents: 2, quantity: 12, distinctDevices: 2, validations: 6 })

  const longAgo = (await gqlOk(app, PATTERNS, { serialId: b.id, g: 'DAY', since: new Date(Date.now() - 60 * 86_400_000).toISOString() })).usagePatterns
  t.equal(longAgo.length, 2, 'the old event shows in a wider window')

  // Client-wide HOUR buckets come from the rollups too, and agree with the raw rows.
  const hours = (await gqlOk(app, PATTERNS, { clientId: client.id, g: 'HOUR' })).usagePatterns
  t.same(hours.map((b: any) => [b.usageEvents, b.quantity, b.distinctDevices]), [[3, 13, 3]])

  // The rollups kept incrementally equal a rebuild from the raw tables (which also picks up the
  // event written around the service above).
  const db = app.deps.database.db
  const snapshot = async () => Promise.all(['usage_daily', 'usage_client_hourly', 'usage_device_days', 'validation_client_hourly'].map(async (table) =>
    (await queryRows<Record<string, unknown>>(db, sql`select * from ${sql.identifier(table)} where client_id = ${client.id}`)).map((r) => JSON.stringify(r)).sort()))
  const before = await snapshot()
  await rebuildRollups(db)
  const after = await snapshot()
  t.same(after[3], before[3], 'validation rollup unchanged by a rebuild')
  t.same(after[1]!.length, before[1]!.length + 1, 'the hourly usage rollup gains only the hour of the event written around the service')
  t.ok(before[0]!.every((row) => after[0]!.includes(row)), 'every daily usage row kept incrementally is what a rebuild makes')
})

t.test('analytics errors and tenant isolation', async (t) => {
  const app = await build(t)
  const mine = await createClient(app)
  const other = await createClient(app)
  const otherSerial = await createSerial(app, other.id)
  const manager = await createApiKey(app, 'MANAGER', mine.id)

  t.match((await gql(app, STATS, { id: other.id }, manager)).errors?.[0]?.extensions, { code: 'NOT_FOUND' })
  t.match((await gql(app, PATTERNS, { serialId: otherSerial.id, g: 'DAY' }, manager)).errors?.[0]?.extensions, { code: 'NOT_FOUND' })
  t.ok((await gql(app, STATS, { id: mine.id }, manager)).data?.clientStatistics, 'a manager sees its own client')
  t.match((await gql(app, PATTERNS, { g: 'DAY' })).errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'clientId' }] })
  t.match((await gql(app, PATTERNS, { clientId: mine.id, g: 'HOUR', since: new Date(Date.now() - 90 * 86_400_000).toISOString() })).errors?.[0]?.extensions, { code: 'VALIDATION_ERROR' })
  t.match((await gql(app, PATTERNS, { clientId: mine.id, g: 'DAY', since: new Date().toISOString(), until: new Date(Date.now() - 1000).toISOString() })).errors?.[0]?.extensions, { code: 'VALIDATION_ERROR' })
  t.match((await gql(app, STATS, { id: mine.id }, null)).errors?.[0]?.extensions, { code: 'AUTHENTICATION_ERROR' })
})

const SHARING = `query ($c: ID!, $days: Int, $first: Int) { licenseSharing(clientId: $c, days: $days, first: $first) {
  serialId maskedNumber score evidence { windowDays distinctIps clientMedianIps activations deactivations clientMedianChurn distinctDevices usageEvents maxUsageCount serialsCompared } } }`

t.test('licenseSharing: off by default, a known answer when on', async (t) => {
  const off = await build(t, { background: false })
  const offClient = await createClient(off)
  const disabled = await gql(off, SHARING, { c: offClient.id })
  t.equal(disabled.errors?.[0]?.extensions.code, 'FEATURE_DISABLED')

  const app = await build(t, { background: false, env: { FEATURE_ADVANCED_ANALYTICS: 'true' } })
  const client = await createClient(app)
  const from = (ip: string) => ({ remoteAddress: ip })
  const post = async (url: string, payload: Record<string, unknown>, ip = '10.0.0.1') => {
    const res = await app.inject({ method: 'POST', url: `/api/v1/serials/${url}`, payload, ...from(ip) })
    t.ok(res.statusCode < 300, `${url} answered ${res.statusCode}`)
    return res
  }
  // Three ordinary serials: one device each, usage from one address.
  for (let i = 0; i < 3; i++) {
    const s = await createSerial(app, client.id)
    await post('validate', { serialNumber: s.serialNumber, deviceId: 'own' }, `10.1.0.${i}`)
    await post('usage', { serialNumber: s.serialNumber, deviceId: 'own' }, `10.1.0.${i}`)
  }
  // One single-seat serial passed around: three devices take the seat in turn (two releases),
  // each recording usage from its own address.
  const shared = await createSerial(app, client.id, { maxUsageCount: 1 })
  for (const [i, device] of ['d1', 'd2', 'd3'].entries()) {
    await post('validate', { serialNumber: shared.serialNumber, deviceId: device }, `10.2.0.${i}`)
    await post('usage', { serialNumber: shared.serialNumber, deviceId: device }, `10.2.0.${i}`)
    if (device !== 'd3') await post('release', { serialNumber: shared.serialNumber, deviceId: device }, `10.2.0.${i}`)
  }

  const signals = (await gqlOk(app, SHARING, { c: client.id })).licenseSharing
  // Medians over the 4 serials: IPs [1,1,1,3] → 1, churn [1,1,1,5] → 1; score 10 × (2 + 4).
  t.same(signals, [{
    serialId: shared.id,
    maskedNumber: signals[0]?.maskedNumber,
    score: 60,
    evidence: { windowDays: 30, distinctIps: 3, clientMedianIps: 1, activations: 3, deactivations: 2, clientMedianChurn: 1, distinctDevices: 3, usageEvents: 3, maxUsageCount: 1, serialsCompared: 4 }
  }], 'only the shared serial, with its evidence')
  t.match(signals[0].maskedNumber, /^\*{5}-\*{5}-\*{5}-\*{5}-[0-9A-Z]{5}$/)

  // Bad input and other tenants.
  t.equal((await gql(app, SHARING, { c: client.id, days: 0 })).errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.equal((await gql(app, SHARING, { c: client.id, first: 1000 })).errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  const other = await createClient(app)
  const manager = await createApiKey(app, 'MANAGER', other.id)
  t.equal((await gql(app, SHARING, { c: client.id }, manager)).errors?.[0]?.extensions.code, 'NOT_FOUND')
  t.same((await gqlOk(app, SHARING, { c: other.id }, manager)).licenseSharing, [], 'nothing for a client without activity')
})
