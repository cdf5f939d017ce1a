// npm run bench [-- --quick] : every scenario of docs/performance.md against real PostgreSQL and
// Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL, defaults below), the ceiling measured in the same
// run. Prints a table and writes bench/results/<timestamp>.json. Never part of npm test.
import { execSync, fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { createClient as wsClient } from 'graphql-ws'
import postgres from 'postgres'
import WebSocket from 'ws'

const quick = process.argv.includes('--quick')
/** --no-redis: PostgreSQL with in-process cache, bus and rate limits (one instance), for comparison. */
const noRedis = process.argv.includes('--no-redis')
const DURATION = quick ? 2 : 10
const WARMUP = quick ? 1 : 3
const CONNECTIONS = 50
const DB = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/serials_bench'
const REDIS = process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const ADMIN = 'bench-admin-key-0123456789abcdefghijklmnopqrstuvwxyz'
const root = new URL('..', import.meta.url).pathname

interface Row { scenario: string, rps: number | null, p50: number | null, p99: number | null, ratio: number | null, target: string, pass: boolean | null, note?: string }
const rows: Row[] = []

/** Starts a child on `port`; an env value of undefined removes that variable. */
function start (script: string, env: Record<string, string | undefined>, port: number): Promise<ChildProcess> {
  const merged: Record<string, string | undefined> = { ...process.env, ...env, PORT: String(port), API_PORT: String(port) }
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k]
  // The service runs as in production (the Dockerfile's `node dist/src/server.js` with its heap
  // limit, built by main).
  const compiled = script === 'src/server.ts'
  const child = fork(compiled ? 'dist/src/server.js' : script, [], { cwd: root, execArgv: compiled ? ['--max-old-space-size=192'] : ['--import', 'tsx'], env: merged as NodeJS.ProcessEnv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      fetch(`http://127.0.0.1:${port}/health`, { method: 'GET' }).then((r) => { if (r.status < 500 || script.includes('ceiling')) { clearInterval(poll); resolve(child) } }, () => {})
    }, 200)
    child.on('exit', (code) => { clearInterval(poll); reject(new Error(`${script} exited with ${code}`)) })
  })
}

async function load (url: string, body: unknown | ((i: number) => unknown), amount?: number) {
  // One counter across warm-up and run: a per-request body never repeats between the two.
  let i = 0
  const opts = (duration: number): autocannon.Options => {
    return {
      url,
      method: 'POST',
      connections: CONNECTIONS,
      duration,
      headers: { 'content-type': 'application/json' },
      ...(typeof body === 'function'
        ? { requests: [{ setupRequest: (req: any) => ({ ...req, body: JSON.stringify((body as (i: number) => unknown)(i++)) }) }] }
        : { body: JSON.stringify(body) }),
      ...(amount ? { amount } : {})
    }
  }
  if (!amount) await autocannon(opts(WARMUP))
  const result = await autocannon(opts(DURATION))
  return { rps: Math.round(result.requests.average), p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx }
}

async function gql (port: number, query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` }, body: JSON.stringify({ query, variables }) })
  const body = await res.json() as { data?: any, errors?: unknown[] }
  if (body.errors) throw new Error(JSON.stringify(body.errors))
  return body.data
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

/** Usage recorded on 3902 at a steady rate; a GraphQL subscriber on 3903 times each arrival. */
async function subscriptionLatency (clientId: string, body: { serialNumber: string, deviceId: string }): Promise<Row> {
  const acked = new Map<string, number>()
  const arrived = new Map<string, number>()
  const ws = wsClient({ url: 'ws://127.0.0.1:3903/graphql', webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN}` }, retryAttempts: 0 })
  await new Promise<void>((resolve, reject) => {
    ws.subscribe({ query: 'subscription ($c: ID) { usageRecorded(clientId: $c) { id } }', variables: { c: clientId } }, {
      next: (v) => { const id = (v.data as { usageRecorded?: { id: string } } | undefined)?.usageRecorded?.id; if (id) arrived.set(id, performance.now()) },
      error: reject,
      complete: () => {}
    })
    ws.on('connected', () => setTimeout(resolve, 500))
  })
  const RATE = 500 // events per second, from 10 concurrent senders
  const total = quick ? 1000 : 5000
  let sent = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (sent < total) {
      const n = sent++
      const due = started + (n * 1000) / RATE
      const wait = due - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      const res = await fetch('http://127.0.0.1:3902/api/v1/serials/usage', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      const at = performance.now()
      const answer = await res.json() as { usageEvent?: { id: string } }
      if (answer.usageEvent) acked.set(answer.usageEvent.id, at)
    }
  }))
  const deadline = Date.now() + 5000
  while (arrived.size < acked.size && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  await ws.dispose()
  const latencies = [...acked].flatMap(([id, at]) => arrived.has(id) ? [Math.max(0, arrived.get(id)! - at)] : []).sort((a, b) => a - b)
  const lost = acked.size - latencies.length
  const p99 = percentile(latencies, 0.99)
  return { scenario: `subscription delivery across two instances (${acked.size.toLocaleString('en')} events at ${RATE}/s)`, rps: null, p50: percentile(latencies, 0.5), p99, ratio: null, target: 'p99 ≤ 50 ms', pass: p99 <= 50 && lost === 0, note: lost ? `${lost} not received` : undefined }
}

/** The quick-start configuration: PGlite in a temporary folder, in-process cache and bus. */
async function embedded (ceilingRps: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'serials-bench-'))
  const service = await start('src/server.ts', { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: dir, ADMIN_API_KEY: ADMIN, LOG_LEVEL: 'warn', RATE_LIMIT: '100000000', VALIDATE_RATE_LIMIT: '100000000', SIGNING_ALGORITHM: 'ED25519' }, 3904)
  try {
    const client = (await gql(3904, 'mutation { createClient(input: { clientNumber: "BENCH-E", name: "Bench", contactEmail: "b@bench.test" }) { id } }')).createClient
    const serial = (await gql(3904, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, maxUsageCount: 10 } })).createSerial
    const body = { serialNumber: serial.serialNumber, deviceId: 'bench-device' }
    const hit = await load('http://127.0.0.1:3904/api/v1/serials/validate', body)
    rows.push({ scenario: 'embedded default (PGlite, in-process cache): REST validate, cache hit', rps: hit.rps, p50: hit.p50, p99: hit.p99, ratio: hit.rps / ceilingRps, target: '- (informational)', pass: null, note: hit.errors ? `${hit.errors} errors` : undefined })
    const usage = await load('http://127.0.0.1:3904/api/v1/serials/usage', body)
    rows.push({ scenario: 'embedded default: recordUsage, durable', rps: usage.rps, p50: usage.p50, p99: usage.p99, ratio: usage.rps / ceilingRps, target: '- (informational)', pass: null, note: usage.errors ? `${usage.errors} errors` : undefined })
  } finally {
    service.kill('SIGTERM')
    await new Promise((resolve) => service.once('exit', resolve))
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main () {
  execSync('npm run build', { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  const admin = postgres(DB.replace(/\/[^/]*$/, '/postgres'), { max: 1, onnotice: () => {} })
  const dbName = new URL(DB).pathname.slice(1)
  await admin.unsafe(`drop database if exists ${dbName} with (force)`)
  await admin.unsafe(`create database ${dbName}`)
  await admin.end()

  const ceiling = await start('bench/ceiling-server.ts', {}, 3901)
  const env: Record<string, string> = { DATABASE_URL: DB, ...(noRedis ? {} : { REDIS_URL: REDIS }), REDIS_PREFIX: `bench${Date.now()}`, ADMIN_API_KEY: ADMIN, LOG_LEVEL: 'warn', RATE_LIMIT: '100000000', VALIDATE_RATE_LIMIT: '100000000', DATA_DIR: `${root}data`, SIGNING_ALGORITHM: 'ED25519' }
  let service = await start('src/server.ts', env, 3902)
  const extra: ChildProcess[] = []
  let bare = { rps: 0, p50: 0, p99: 0, errors: 0 }
  try {
    const client = (await gql(3902, 'mutation { createClient(input: { clientNumber: "BENCH-1", name: "Bench", contactEmail: "b@bench.test" }) { id } }')).createClient
    const serial = (await gql(3902, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, maxUsageCount: 10 } })).createSerial
    const body = { serialNumber: serial.serialNumber, deviceId: 'bench-device' }

    bare = await load('http://127.0.0.1:3901/validate', body)
    rows.push({ scenario: 'ceiling: bare Fastify, same JSON', rps: bare.rps, p50: bare.p50, p99: bare.p99, ratio: 1, target: '-', pass: null })

    const rest = await load('http://127.0.0.1:3902/api/v1/serials/validate', body)
    const restRatio = rest.rps / bare.rps
    rows.push({ scenario: 'REST validate, known device, cache hit', rps: rest.rps, p50: rest.p50, p99: rest.p99, ratio: restRatio, target: '≥ 50 %, p99 ≤ 10 ms', pass: restRatio >= 0.5 && rest.p99 <= 10 && rest.errors === 0, note: rest.errors ? `${rest.errors} errors` : undefined })

    const query = 'mutation V($input: ValidateSerialInput!) { validateSerial(input: $input) { valid code message expiresAt remainingDevices isDemo serverTime } }'
    const graphql = await load('http://127.0.0.1:3902/graphql', { query, variables: { input: body }, operationName: 'V' })
    const gqlRatio = graphql.rps / bare.rps
    rows.push({ scenario: 'GraphQL validateSerial, cache hit', rps: graphql.rps, p50: graphql.p50, p99: graphql.p99, ratio: gqlRatio, target: '≥ 35 %', pass: gqlRatio >= 0.35 && graphql.errors === 0 })

    // Heartbeats of 1,000 running apps on one floating serial: every lease is known, so each is
    // answered from memory and its renewal goes out in the batched flush.
    const policy = (await gql(3902, 'mutation ($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', { i: { name: 'Bench floating', maxDevices: 1000, floating: true, heartbeatSeconds: 300, heartbeatGraceSeconds: 60, entitlements: ['BENCH'] } })).createPolicy
    const floating = (await gql(3902, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, policyId: policy.id } })).createSerial
    const seats = Array.from({ length: 1000 }, (_, i) => `app-${i}`)
    for (const deviceId of seats) {
      await fetch('http://127.0.0.1:3902/api/v1/serials/validate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ serialNumber: floating.serialNumber, deviceId }) })
    }
    const beats = await load('http://127.0.0.1:3902/api/v1/serials/heartbeat', (i: number) => ({ serialNumber: floating.serialNumber, deviceId: seats[i % seats.length] }))
    const beatRatio = beats.rps / bare.rps
    rows.push({ scenario: 'REST heartbeat, 1,000 known leases on one floating serial', rps: beats.rps, p50: beats.p50, p99: beats.p99, ratio: beatRatio, target: '≥ 50 %, p99 ≤ 10 ms', pass: beatRatio >= 0.5 && beats.p99 <= 10 && beats.errors === 0, note: beats.errors ? `${beats.errors} errors` : undefined })

    // Many serials for the cache-miss and memory scenarios.
    const count = quick ? 20_000 : 100_000
    const numbers: string[] = []
    const createStart = performance.now()
    for (let i = 0; i < count / 10_000; i++) {
      const res = await gql(3902, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serialNumber } } }', { i: { clientId: client.id, count: 10_000, maxUsageCount: 2 } })
      numbers.push(...res.createSerials.serials.map((s: { serialNumber: string }) => s.serialNumber))
    }
    const createSeconds = (performance.now() - createStart) / 1000
    rows.push({ scenario: `createSerials: ${count.toLocaleString('en')} serials (calls of 10,000)`, rps: Math.round(count / createSeconds), p50: null, p99: null, ratio: null, target: quick ? 'full run: 100,000 in ≤ 10 s' : '100,000 in ≤ 10 s', pass: quick ? null : createSeconds <= 10, note: `${createSeconds.toFixed(2)} s` })

    // One active device on every serial, seeded in SQL (activation is not what this measures), so
    // the next pass finds known devices. Then a fresh process (cold L1) and a new Redis prefix
    // (cold L2): every request names a serial not seen since the restart.
    const seed = postgres(DB, { max: 1, onnotice: () => {} })
    await seed`insert into devices (id, serial_id, device_id) select 'dev_' || upper(substr(md5(id), 1, 26)), id, 'dev-1' from serials where client_id = ${client.id} and batch_id is not null on conflict do nothing`
    await seed`update serials set active_devices = 1 where client_id = ${client.id} and batch_id is not null`
    await seed.end()
    service.kill('SIGTERM')
    await new Promise((resolve) => service.once('exit', resolve))
    const coldPrefix = `bench-cold${Date.now()}`
    service = await start('src/server.ts', { ...env, REDIS_PREFIX: coldPrefix }, 3902)
    const miss = await load('http://127.0.0.1:3902/api/v1/serials/validate', (i: number) => ({ serialNumber: numbers[i % numbers.length], deviceId: 'dev-1' }))
    const missRatio = miss.rps / bare.rps
    rows.push({ scenario: 'REST validate, cache miss (cold L1 and L2)', rps: miss.rps, p50: miss.p50, p99: miss.p99, ratio: missRatio, target: '≥ 25 %', pass: missRatio >= 0.25 && miss.errors === 0, note: miss.rps * (DURATION + WARMUP) > numbers.length ? 'more requests than serials: later ones hit the cache' : undefined })

    // Memory: 1,000,000 validations spread over every serial (100,000 in a full run), then RSS.
    const validations = quick ? 200_000 : 1_000_000
    const spread = await load('http://127.0.0.1:3902/api/v1/serials/validate', (i: number) => ({ serialNumber: numbers[i % numbers.length], deviceId: 'dev-1' }), validations)
    const rss = await fetch('http://127.0.0.1:3902/metrics').then((r) => r.text()).then((text) => Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? 0))
    rows.push({ scenario: `memory: RSS after ${validations.toLocaleString('en')} validations over ${numbers.length.toLocaleString('en')} serials`, rps: spread.rps, p50: spread.p50, p99: spread.p99, ratio: null, target: '≤ 300 MB after 1,000,000 validations over 100,000 serials', pass: quick ? null : rss <= 300 * 1024 * 1024 && spread.errors === 0, note: `${Math.round(rss / 1024 / 1024)} MB` })

    const usage = await load('http://127.0.0.1:3902/api/v1/serials/usage', body)
    rows.push({ scenario: 'recordUsage, durable (acknowledged after commit)', rps: usage.rps, p50: usage.p50, p99: usage.p99, ratio: usage.rps / bare.rps, target: '≥ 5,000 events/s', pass: usage.rps >= 5000 && usage.errors === 0 })

    // Subscription delivery across two instances (one Redis prefix): usage recorded on 3902, a
    // subscriber on 3903; latency from the HTTP acknowledgement to receipt.
    if (!noRedis) {
      extra.push(await start('src/server.ts', { ...env, REDIS_PREFIX: coldPrefix }, 3903))
      rows.push(await subscriptionLatency(client.id, body))
    }
  } finally {
    service.kill('SIGTERM')
    ceiling.kill('SIGTERM')
    for (const child of extra) child.kill('SIGTERM')
  }
  if (!noRedis) await embedded(bare.rps)

  const fmt = (v: number | null, d = 0) => v === null ? '-' : v.toFixed(d)
  console.log('\n| scenario | req/s | p50 ms | p99 ms | ratio to ceiling | target | pass |\n|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.scenario}${r.note ? ` (${r.note})` : ''} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.ratio === null ? '-' : `${(r.ratio * 100).toFixed(0)} %`} | ${r.target} | ${r.pass === null ? '-' : r.pass ? 'pass' : 'FAIL'} |`)
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  const file = new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}${noRedis ? '-no-redis' : ''}.json`, import.meta.url)
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, redis: !noRedis, connections: CONNECTIONS, durationSeconds: DURATION, rows }, null, 2))
  console.log(`\nwritten ${file.pathname}`)
}

main().catch((error) => { console.error(error); process.exit(1) })
