// Every contract metric name is exposed, and the business ones move with real traffic.
import t from 'tap'
import { refreshGauges } from '../../src/jobs/refresh-gauges.ts'
import { build, createClient, createSerial, gqlOk, restValidate } from '../helper.ts'

const CONTRACT_METRICS = [
  'http_request_duration_seconds', 'graphql_operation_duration_seconds', 'serials_validations_total',
  'serials_usage_events_total', 'serials_cache_requests_total', 'serials_active_serials', 'serials_active_devices',
  'serials_clients', 'serials_outbox_pending', 'serials_webhook_deliveries_total',
  'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes'
]

function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let total = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const [series, value] = line.split(' ')
    if (!series || (series !== name && !series.startsWith(`${name}{`))) continue
    if (wanted.every((w) => series.includes(w))) total += Number(value)
  }
  return total
}

t.test('GET /metrics: contract names, route templates, business counters', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })
  await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'b' })
  await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'a' } })
  await gqlOk(app, 'query Dashboard { me { id } }')
  await refreshGauges(app.deps.database.db, app.deps.metrics)

  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/plain/)
  for (const name of CONTRACT_METRICS) t.match(res.body, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`)

  t.equal(sample(res.body, 'serials_validations_total', { code: 'VALID' }), 3, 'two validations and the usage call')
  t.equal(sample(res.body, 'serials_validations_total', { code: 'TOO_MANY_DEVICES' }), 1)
  t.equal(sample(res.body, 'serials_usage_events_total'), 1)
  t.ok(sample(res.body, 'serials_cache_requests_total', { level: 'l1', result: 'hit' }) >= 2, 'known device answered from L1')
  t.ok(sample(res.body, 'serials_active_serials') >= 1)
  t.ok(sample(res.body, 'serials_active_devices') >= 1)
  t.ok(sample(res.body, 'serials_clients') >= 1)
  t.ok(sample(res.body, 'http_request_duration_seconds_count', { route: '/api/v1/serials/validate', method: 'POST', status_code: '200' }) >= 3, 'labelled by route template')
  t.ok(sample(res.body, 'http_request_duration_seconds_count', { route: '/graphql' }) >= 1, 'GraphQL requests are timed too')
  t.notMatch(res.body, /route="\/api\/v1\/serials\/validate\?/, 'never the raw URL')
  // operation_name is bounded: the root field (`me`), never the caller's chosen name (Dashboard).
  t.equal(sample(res.body, 'graphql_operation_duration_seconds_count', { operation_type: 'query', operation_name: 'me' }), 1)
})

t.test('METRICS_TOKEN protects /metrics', async (t) => {
  const app = await build(t, { env: { METRICS_TOKEN: 'scrape-token-0123456789' }, background: false })
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode, 401)
  const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer scrape-token-0123456789' } })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /serials_validations_total/)
})
