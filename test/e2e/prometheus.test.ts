// A real Prometheus scrapes the service on loopback; a metric is read back through its HTTP API.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { build, createClient, createSerial, freePort, restValidate } from '../helper.ts'

const prometheus = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => spawnSync('test', ['-x', p]).status === 0)
if (!prometheus && process.env.CI === 'true') throw new Error('the Prometheus test needs prometheus (apt-get install prometheus)')
const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => spawnSync('test', ['-x', p]).status === 0)
if (!promtool && process.env.CI === 'true') throw new Error('the metrics lint needs promtool (apt-get install prometheus)')

t.test('promtool check metrics accepts /metrics after traffic', { skip: promtool ? false : 'needs promtool' }, async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })
  await restValidate(app, { serialNumber: 'not-a-serial', deviceId: 'pc' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.body, /serials_validations_total\{code="VALID"\} 1/, 'the scrape carries this test\'s traffic')
  const lint = spawnSync(promtool!, ['check', 'metrics'], { input: res.body, encoding: 'utf8' })
  t.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`)
  t.equal(`${lint.stdout}${lint.stderr}`.trim(), '', 'no lint findings')
})

t.test('Prometheus scrapes /metrics with the bearer token', { skip: prometheus ? false : 'needs prometheus' }, async (t) => {
  const token = 'prometheus-scrape-token-0123'
  const app = await build(t, { env: { METRICS_TOKEN: token } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  for (let i = 0; i < 3; i++) await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const target = `127.0.0.1:${(app.server.address() as { port: number }).port}`

  const dir = mkdtempSync(join(tmpdir(), 'serials-prom-'))
  writeFileSync(join(dir, 'token'), token)
  writeFileSync(join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s }
scrape_configs:
  - job_name: serials
    authorization: { type: Bearer, credentials_file: ${join(dir, 'token')} }
    static_configs: [{ targets: ['${target}'] }]
`)
  const port = await freePort()
  const server = spawn(prometheus!, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' })
  t.teardown(() => { server.kill('SIGTERM') })

  let value: number | undefined
  const end = Date.now() + 60_000
  while (value === undefined && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent('serials_validations_total{code="VALID"}')}`)
      const body = await res.json() as { data?: { result?: Array<{ value: [number, string] }> } }
      const result = body.data?.result?.[0]
      if (result) value = Number(result.value[1])
    } catch { /* not up yet */ }
  }
  t.equal(value, 3, 'Prometheus read serials_validations_total{code="VALID"} = 3 from the service')
  const up = await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=up`)).json() as { data: { result: Array<{ value: [number, string] }> } }
  t.equal(up.data.result[0]?.value[1], '1', 'the target is up (token accepted)')
})
