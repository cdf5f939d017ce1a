// OpenTelemetry tracing end to end: the service as a child process with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an OTLP/HTTP receiver in this test; spans for HTTP, GraphQL, PostgreSQL and Redis
// must arrive in one trace, and log lines must carry the trace id. Real PostgreSQL and Redis when
// TEST_DATABASE_URL / TEST_REDIS_URL are set (CI), else the embedded backends (no Redis spans).
import t from 'tap'
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ADMIN_KEY, build, databaseUrl, freePort, redisUrl, TEST_DATA_DIR, uniqueClientNumber } from '../helper.ts'

const root = new URL('../..', import.meta.url).pathname

interface OtlpSpan { traceId: string, spanId: string, parentSpanId?: string, name: string, kind: number, attributes?: Array<{ key: string, value: Record<string, unknown> }> }

/** OTLP/JSON ids are hex; some encoders send base64: accept both. */
const hex = (id: string | undefined) => !id ? '' : /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex')

t.test('spans for HTTP, GraphQL, PostgreSQL and Redis in one trace; trace ids in the logs', async (t) => {
  const spans: OtlpSpan[] = []
  const receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => { body += chunk })
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
        for (const rs of payload.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId) })
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  t.teardown(() => receiver.close())
  const receiverPort = (receiver.address() as { port: number }).port

  // Migrations from this process first (the same database the child uses).
  const prefix = `otel${process.pid}${Date.now()}`
  await build(t, { background: false, env: { REDIS_PREFIX: prefix } })
  const dataDir = mkdtempSync(join(tmpdir(), 'serials-otel-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const port = await freePort()
  const env: Record<string, string | undefined> = {
    ...process.env,
    API_PORT: String(port),
    ADMIN_API_KEY: ADMIN_KEY,
    LOG_LEVEL: 'info',
    REDIS_PREFIX: prefix,
    DATA_DIR: dataDir,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPort}`,
    OTEL_SERVICE_NAME: 'serials-test'
  }
  // On the shared database, the shared development secrets: its secret fingerprints are theirs.
  if (databaseUrl) { env.DATABASE_URL = databaseUrl; env.DATA_DIR = TEST_DATA_DIR } else delete env.DATABASE_URL
  if (redisUrl) env.REDIS_URL = redisUrl; else delete env.REDIS_URL
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  let logs = ''
  child.stdout!.on('data', (chunk) => { logs += chunk })
  t.teardown(() => { child.kill('SIGTERM') })

  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/health`)).ok) break } catch {}
    if (i > 150) throw new Error('the service did not start')
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const gql = async (query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}`, ...headers }, body: JSON.stringify({ query, variables }) })
    const body = await res.json() as { data?: any, errors?: unknown }
    t.equal(body.errors, undefined)
    return body.data
  }

  // A caller's traceparent is continued.
  const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736'
  const client = (await gql('mutation ($n: String!) { createClient(input: { clientNumber: $n, name: "Otel", contactEmail: "o@example.com" }) { id } }', { n: uniqueClientNumber() }, { traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` })).createClient
  const serial = (await gql('mutation ($c: ID!) { createSerial(input: { clientId: $c }) { serialNumber } }', { c: client.id })).createSerial
  const rest = await fetch(`${base}/api/v1/serials/validate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ serialNumber: serial.serialNumber, deviceId: 'otel-device' }) })
  t.equal(rest.status, 200)

  const byName = (name: string) => spans.filter((s) => s.name === name)
  for (let i = 0; i < 100 && (byName('POST /api/v1/serials/validate').length === 0 || byName('Mutation.createSerial').length === 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  const created = byName('POST /graphql').find((s) => s.traceId === callerTrace)
  t.ok(created, 'the HTTP span continues the caller\'s trace (W3C traceparent)')
  t.equal(created?.kind, 2, 'SERVER span')

  // GraphQL root field span under the HTTP span, PostgreSQL spans under it.
  const field = byName('Mutation.createSerial')[0]
  t.ok(field, 'a span for the GraphQL root field')
  const http = spans.find((s) => s.spanId === field?.parentSpanId)
  t.equal(http?.name, 'POST /graphql', 'the field span\'s parent is the HTTP span')
  const sqlInField = spans.filter((s) => s.traceId === field?.traceId && s.name.startsWith('postgresql '))
  t.ok(sqlInField.length > 0, 'PostgreSQL spans in the same trace')
  t.ok(sqlInField.every((s) => s.kind === 3), 'as CLIENT spans')
  const text = sqlInField.flatMap((s) => s.attributes ?? []).find((a) => a.key === 'db.query.text')?.value.stringValue as string | undefined
  t.match(text ?? '', /^(insert|select|begin|with)/i, 'statement text recorded')
  t.notOk(JSON.stringify(spans).includes(serial.serialNumber), 'no serial number in any span')

  // The REST validation: a cold cache reads Redis (when configured) and PostgreSQL.
  const validate = byName('POST /api/v1/serials/validate')[0]
  t.ok(validate, 'the REST route span, named by its template')
  const inValidate = spans.filter((s) => s.traceId === validate?.traceId).map((s) => s.name)
  t.ok(inValidate.some((n) => n.startsWith('postgresql ')), 'PostgreSQL span in the validation trace')
  if (redisUrl) t.ok(inValidate.includes('redis get'), 'Redis span in the validation trace')

  // Log lines of a traced request carry its trace id.
  const lines = logs.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l) as Record<string, unknown> } catch { return {} } })
  t.ok(lines.some((l) => l.trace_id === validate?.traceId && typeof l.span_id === 'string'), 'a log line with the request\'s trace_id and span_id')
})
