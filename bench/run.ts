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
/**
 * --only=rest,graphql,…: run these scenarios and skip the rest (keys: rest, graphql, heartbeat,
 * activations, usage, miss, memory, subscription, embedded). Ratios stay paired with the ceiling.
 */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',').filter(Boolean)
const want = (key: string): boolean => !only || only.includes(key)
const DURATION = quick ? 2 : 5
const WARMUP = quick ? 1 : 2
/** Every ratio is the median of this many rounds, each round measuring the ceiling, then the scenario. */
const ROUNDS = 3
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
  // The service runs as in production (the Dockerfile's `node dist/src/main/server.js` with its heap
  // limit, built by main).
  const compiled = script === 'src/main/server.ts'
  const child = fork(compiled ? 'dist/src/main/server.js' : script, [], { cwd: root, execArgv: compiled ? ['--max-old-space-size=192'] : ['--import', 'tsx'], env: merged as NodeJS.ProcessEnv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
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
  const RATE = 1000 // events per second, from 10 concurrent senders
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
async function embedded (): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'serials-bench-'))
  const service = await start('src/main/server.ts', { DATABASE_URL: undefined, REDIS_URL: undefined, DATA_DIR: dir, ADMIN_API_KEY: ADMIN, LOG_LEVEL: 'warn', RATE_LIMIT: '100000000', VALIDATE_RATE_LIMIT: '100000000', FAILED_LOOKUP_LIMIT: '100000000', SIGNING_ALGORITHM: 'ED25519' }, 3904)
  try {
    const client = (await gql(3904, 'mutation { createClient(input: { clientNumber: "BENCH-E", name: "Bench", contactEmail: "b@bench.test" }) { id } }')).createClient
    const serial = (await gql(3904, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, maxUsageCount: 10 } })).createSerial
    const body = { serialNumber: serial.serialNumber, deviceId: 'bench-device' }
    rows.push(await paired('embedded default (PGlite, in-process cache): REST validate, cache hit', '- (informational)', 0, null,
      () => load('http://127.0.0.1:3904/api/v1/serials/validate', body)))
    rows[rows.length - 1]!.pass = null
    const usage: Load[] = []
    for (let round = 0; round < ROUNDS; round++) usage.push(await load('http://127.0.0.1:3904/api/v1/serials/usage', body))
    const rps = median(usage.map((u) => u.rps))
    const p99 = median(usage.map((u) => u.p99))
    const errors = usage.reduce((n, u) => n + u.errors, 0)
    rows.push({ scenario: 'embedded default: recordUsage, durable', rps, p50: median(usage.map((u) => u.p50)), p99, ratio: null, target: '≥ 2,000/s, p99 ≤ 50 ms', pass: rps >= 2000 && p99 <= 50 && errors === 0, note: [`req/s ${usage.map((u) => u.rps).join(' / ')}`, errors ? `${errors} errors` : ''].filter(Boolean).join('; ') })
  } finally {
    service.kill('SIGTERM')
    await new Promise((resolve) => service.once('exit', resolve))
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

type Load = Awaited<ReturnType<typeof load>>

/**
 * ROUNDS rounds of [ceiling, scenario] back to back: each round's ratio compares two loads a few
 * seconds apart, and the row reports the median ratio (with the median req/s and p99 of the scenario).
 * `before` runs ahead of each round's scenario (a restart for the cold-cache pass).
 */
async function paired (scenario: string, target: string, minRatio: number, maxP99: number | null, run: () => Promise<Load>, before?: () => Promise<void>): Promise<Row> {
  const ratios: number[] = []
  const runs: Load[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const bare = await load('http://127.0.0.1:3901/validate', { serialNumber: 'ceiling', deviceId: 'ceiling' })
    if (before) await before()
    const result = await run()
    runs.push(result)
    ratios.push(result.rps / bare.rps)
    ceilings.push(bare.rps)
  }
  const ratio = median(ratios)
  const p99 = median(runs.map((r) => r.p99))
  const errors = runs.reduce((n, r) => n + r.errors, 0)
  return {
    scenario,
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99,
    ratio,
    target,
    pass: ratio >= minRatio && (maxP99 === null || p99 <= maxP99) && errors === 0,
    note: [`ratios ${ratios.map((r) => `${(r * 100).toFixed(0)} %`).join(' / ')}`, errors ? `${errors} errors` : ''].filter(Boolean).join('; ')
  }
}

const ceilings: number[] = []

async function main () {
  execSync('npm run build', { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  const admin = postgres(DB.replace(/\/[^/]*$/, '/postgres'), { max: 1, onnotice: () => {} })
  const dbName = new URL(DB).pathname.slice(1)
  await admin.unsafe(`drop database if exists ${dbName} with (force)`)
  await admin.unsafe(`create database ${dbName}`)
  await admin.end()

  const ceiling = await start('bench/ceiling-server.ts', {}, 3901)
  const env: Record<string, string> = { DATABASE_URL: DB, ...(noRedis ? {} : { REDIS_URL: REDIS }), REDIS_PREFIX: `bench${Date.now()}`, ADMIN_API_KEY: ADMIN, LOG_LEVEL: 'warn', RATE_LIMIT: '100000000', VALIDATE_RATE_LIMIT: '100000000', FAILED_LOOKUP_LIMIT: '100000000', DATA_DIR: `${root}data`, SIGNING_ALGORITHM: 'ED25519' }
  let service = await start('src/main/server.ts', env, 3902)
  const restart = async (prefix: string) => {
    service.kill('SIGTERM')
    await new Promise((resolve) => service.once('exit', resolve))
    service = await start('src/main/server.ts', { ...env, REDIS_PREFIX: prefix }, 3902)
  }
  const extra: ChildProcess[] = []
  try {
    const client = (await gql(3902, 'mutation { createClient(input: { clientNumber: "BENCH-1", name: "Bench", contactEmail: "b@bench.test" }) { id } }')).createClient
    const serial = (await gql(3902, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, maxUsageCount: 10 } })).createSerial
    const body = { serialNumber: serial.serialNumber, deviceId: 'bench-device' }

    if (want('rest')) {
      rows.push(await paired('REST validate, known device, cache hit', '≥ 50 %, p99 ≤ 10 ms', 0.5, 10,
        () => load('http://127.0.0.1:3902/api/v1/serials/validate', body)))
    }

    const query = 'mutation V($input: ValidateSerialInput!) { validateSerial(input: $input) { valid code message expiresAt remainingDevices isDemo serverTime } }'
    if (want('graphql')) {
      rows.push(await paired('GraphQL validateSerial, cache hit', '≥ 35 %', 0.35, null,
        () => load('http://127.0.0.1:3902/graphql', { query, variables: { input: body }, operationName: 'V' })))
    }

    // Heartbeats of 1,000 running apps on one floating serial: every lease is known, so each is
    // answered from memory and its renewal goes out in the batched flush.
    const policy = (await gql(3902, 'mutation ($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', { i: { name: 'Bench floating', maxDevices: 1000, floating: true, heartbeatSeconds: 300, heartbeatGraceSeconds: 60, entitlements: ['BENCH'] } })).createPolicy
    const floating = (await gql(3902, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, policyId: policy.id } })).createSerial
    const seats = Array.from({ length: 1000 }, (_, i) => `app-${i}`)
    for (const deviceId of want('heartbeat') ? seats : []) {
      await fetch('http://127.0.0.1:3902/api/v1/serials/validate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ serialNumber: floating.serialNumber, deviceId }) })
    }
    if (want('heartbeat')) {
      rows.push(await paired('REST heartbeat, 1,000 known leases on one floating serial', '≥ 40 %', 0.4, null,
        () => load('http://127.0.0.1:3902/api/v1/serials/heartbeat', (i: number) => ({ serialNumber: floating.serialNumber, deviceId: seats[i % seats.length] }))))
    }

    // New devices spread over 5,000 serials (room for 200 devices each): every request is an
    // activation (device ids never repeat across warm-up, rounds and runs).
    const roomy: string[] = []
    for (let i = 0; i < (want('activations') ? 5_000 / 2_500 : 0); i++) {
      const res = await gql(3902, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serialNumber } } }', { i: { clientId: client.id, count: 2_500, maxUsageCount: 200 } })
      roomy.push(...res.createSerials.serials.map((s: { serialNumber: string }) => s.serialNumber))
    }
    let activation = 0
    if (want('activations')) {
      rows.push(await paired('new-device activations over 5,000 serials', '≥ 10 %', 0.1, null,
        () => load('http://127.0.0.1:3902/api/v1/serials/validate', () => { const n = activation++; return { serialNumber: roomy[n % roomy.length], deviceId: `new-${n}` } })))
    }

    if (want('usage')) {
      rows.push(await paired('recordUsage, durable (acknowledged after commit)', '≥ 25 %', 0.25, null,
        () => load('http://127.0.0.1:3902/api/v1/serials/usage', body)))
    }

    // Many serials for the cache-miss and memory scenarios.
    const count = !want('miss') && !want('memory') ? 0 : quick ? 20_000 : 100_000
    const numbers: string[] = []
    const createStart = performance.now()
    for (let i = 0; i < count / 10_000; i++) {
      const res = await gql(3902, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serialNumber } } }', { i: { clientId: client.id, count: 10_000, maxUsageCount: 2 } })
      numbers.push(...res.createSerials.serials.map((s: { serialNumber: string }) => s.serialNumber))
    }
    const createSeconds = (performance.now() - createStart) / 1000
    if (count > 0) rows.push({ scenario: `createSerials: ${count.toLocaleString('en')} serials (calls of 10,000)`, rps: Math.round(count / createSeconds), p50: null, p99: null, ratio: null, target: quick ? 'full run: 100,000 in ≤ 10 s' : '100,000 in ≤ 10 s', pass: quick ? null : createSeconds <= 10, note: `${createSeconds.toFixed(2)} s` })

    // One active device on every one of those serials, seeded in SQL (activation is not what this
    // measures), so the next passes find known devices. Each round starts a fresh process (cold
    // L1) on a new Redis prefix (cold L2), and names serials not seen since that restart.
    const seed = postgres(DB, { max: 1, onnotice: () => {} })
    await seed`insert into devices (id, serial_id, device_id) select 'dev_' || upper(substr(md5(id), 1, 26)), id, 'dev-1' from serials where client_id = ${client.id} and max_usage_count = 2 and batch_id is not null on conflict do nothing`
    await seed`update serials set active_devices = 1 where client_id = ${client.id} and max_usage_count = 2 and batch_id is not null`
    await seed.end()
    let coldPrefix = env.REDIS_PREFIX!
    let cold = 0
    if (want('miss')) {
      const missRow = await paired('REST validate, cache miss (cold L1 and L2)', '≥ 25 %', 0.25, null,
        () => load('http://127.0.0.1:3902/api/v1/serials/validate', () => ({ serialNumber: numbers[cold++ % numbers.length], deviceId: 'dev-1' })),
        async () => { coldPrefix = `bench-cold${Date.now()}`; await restart(coldPrefix) })
      if (cold > numbers.length) missRow.note += '; more requests than serials: later ones hit the cache'
      rows.push(missRow)
    }

    // Memory: 1,000,000 validations spread over every serial (100,000 in a full run), then RSS.
    const validations = quick ? 200_000 : 1_000_000
    if (want('memory')) {
      const spread = await load('http://127.0.0.1:3902/api/v1/serials/validate', (i: number) => ({ serialNumber: numbers[i % numbers.length], deviceId: 'dev-1' }), validations)
      const rss = await fetch('http://127.0.0.1:3902/metrics').then((r) => r.text()).then((text) => Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? 0))
      rows.push({ scenario: `memory: RSS after ${validations.toLocaleString('en')} validations over ${numbers.length.toLocaleString('en')} serials`, rps: spread.rps, p50: spread.p50, p99: spread.p99, ratio: null, target: '≤ 300 MB after 1,000,000 validations over 100,000 serials', pass: quick ? null : rss <= 300 * 1024 * 1024 && spread.errors === 0, note: `${Math.round(rss / 1024 / 1024)} MB` })
    }

    // Subscription delivery across two instances (one Redis prefix): usage recorded on 3902, a
    // subscriber on 3903; latency from the HTTP acknowledgement to receipt. Median of the rounds.
    if (!noRedis && want('subscription')) {
      extra.push(await start('src/main/server.ts', { ...env, REDIS_PREFIX: coldPrefix }, 3903))
      const subs: Row[] = []
      for (let round = 0; round < ROUNDS; round++) subs.push(await subscriptionLatency(client.id, body))
      const byP99 = [...subs].sort((a, b) => (a.p99 ?? 0) - (b.p99 ?? 0))
      const mid = byP99[Math.floor(byP99.length / 2)]!
      rows.push({ ...mid, note: [`p99 ${subs.map((r) => r.p99?.toFixed(1)).join(' / ')} ms`, mid.note].filter(Boolean).join('; '), pass: mid.pass && subs.every((r) => !r.note?.includes('not received')) })
    }
    service.kill('SIGTERM')
    for (const child of extra.splice(0)) child.kill('SIGTERM')
    // The embedded default, compared with the same ceiling (still running).
    if (!noRedis && want('embedded')) await embedded()
  } finally {
    service.kill('SIGTERM')
    ceiling.kill('SIGTERM')
    for (const child of extra) child.kill('SIGTERM')
  }

  const fmt = (v: number | null, d = 0) => v === null ? '-' : v.toFixed(d)
  console.log(`\nceiling (bare Fastify, same JSON): median ${median(ceilings)} req/s over ${ceilings.length} loads (${Math.min(...ceilings)}–${Math.max(...ceilings)}); every ratio is the median of ${ROUNDS} rounds [ceiling, scenario]`)
  console.log('\n| scenario | req/s | p50 ms | p99 ms | ratio to ceiling | target | pass |\n|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.scenario}${r.note ? ` (${r.note})` : ''} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.ratio === null ? '-' : `${(r.ratio * 100).toFixed(0)} %`} | ${r.target} | ${r.pass === null ? '-' : r.pass ? 'pass' : 'FAIL'} |`)
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  const file = new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}${noRedis ? '-no-redis' : ''}${only ? `-only-${only.join('-')}` : ''}.json`, import.meta.url)
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, redis: !noRedis, only: only ?? null, connections: CONNECTIONS, durationSeconds: DURATION, rounds: ROUNDS, ceilings, rows }, null, 2))
  console.log(`\nwritten ${file.pathname}`)
}

main().catch((error) => { console.error(error); process.exit(1) })
