// npm run bench [-- --quick] : every scenario of docs/performance.md against real PostgreSQL and
// Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL, defaults below), the ceiling measured in the same
// run. Prints a table and writes bench/results/<timestamp>.json. Never part of npm test.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import autocannon from 'autocannon'
import postgres from 'postgres'

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

function start (script: string, env: Record<string, string>, port: number): Promise<ChildProcess> {
  const child = fork(script, [], { cwd: root, execArgv: ['--import', 'tsx'], env: { ...process.env, ...env, PORT: String(port), API_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      fetch(`http://127.0.0.1:${port}/health`, { method: 'GET' }).then((r) => { if (r.status < 500 || script.includes('ceiling')) { clearInterval(poll); resolve(child) } }, () => {})
    }, 200)
    child.on('exit', (code) => { clearInterval(poll); reject(new Error(`${script} exited with ${code}`)) })
  })
}

async function load (url: string, body: unknown | ((i: number) => unknown), amount?: number) {
  const opts = (duration: number): autocannon.Options => {
    let i = 0
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

async function main () {
  const admin = postgres(DB.replace(/\/[^/]*$/, '/postgres'), { max: 1, onnotice: () => {} })
  const dbName = new URL(DB).pathname.slice(1)
  await admin.unsafe(`drop database if exists ${dbName} with (force)`)
  await admin.unsafe(`create database ${dbName}`)
  await admin.end()

  const ceiling = await start('bench/ceiling-server.ts', {}, 3901)
  const env: Record<string, string> = { DATABASE_URL: DB, ...(noRedis ? {} : { REDIS_URL: REDIS }), REDIS_PREFIX: `bench${Date.now()}`, ADMIN_API_KEY: ADMIN, LOG_LEVEL: 'warn', RATE_LIMIT: '100000000', VALIDATE_RATE_LIMIT: '100000000', DATA_DIR: `${root}data`, SIGNING_ALGORITHM: 'ED25519' }
  let service = await start('src/server.ts', env, 3902)
  try {
    const client = (await gql(3902, 'mutation { createClient(input: { clientNumber: "BENCH-1", name: "Bench", contactEmail: "b@bench.test" }) { id } }')).createClient
    const serial = (await gql(3902, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serialNumber } }', { i: { clientId: client.id, maxUsageCount: 10 } })).createSerial
    const body = { serialNumber: serial.serialNumber, deviceId: 'bench-device' }

    const bare = await load('http://127.0.0.1:3901/validate', body)
    rows.push({ scenario: 'ceiling: bare Fastify, same JSON', rps: bare.rps, p50: bare.p50, p99: bare.p99, ratio: 1, target: '-', pass: null })

    const rest = await load('http://127.0.0.1:3902/api/v1/serials/validate', body)
    const restRatio = rest.rps / bare.rps
    rows.push({ scenario: 'REST validate, known device, cache hit', rps: rest.rps, p50: rest.p50, p99: rest.p99, ratio: restRatio, target: '≥ 50 %, p99 ≤ 10 ms', pass: restRatio >= 0.5 && rest.p99 <= 10 && rest.errors === 0, note: rest.errors ? `${rest.errors} errors` : undefined })

    const query = 'mutation V($input: ValidateSerialInput!) { validateSerial(input: $input) { valid code message expiresAt remainingDevices isDemo serverTime } }'
    const graphql = await load('http://127.0.0.1:3902/graphql', { query, variables: { input: body }, operationName: 'V' })
    const gqlRatio = graphql.rps / bare.rps
    rows.push({ scenario: 'GraphQL validateSerial, cache hit', rps: graphql.rps, p50: graphql.p50, p99: graphql.p99, ratio: gqlRatio, target: '≥ 35 %', pass: gqlRatio >= 0.35 && graphql.errors === 0 })

    // Cache miss: many serials with an active device each, then a fresh process (cold L1) and a
    // new Redis prefix (cold L2); every request names a serial not seen since the restart.
    const count = quick ? 20_000 : 100_000
    const numbers: string[] = []
    const createStart = performance.now()
    for (let i = 0; i < count / 10_000; i++) {
      const res = await gql(3902, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serialNumber } } }', { i: { clientId: client.id, count: 10_000, maxUsageCount: 2 } })
      numbers.push(...res.createSerials.serials.map((s: { serialNumber: string }) => s.serialNumber))
    }
    const createSeconds = (performance.now() - createStart) / 1000
    rows.push({ scenario: `createSerials: ${count.toLocaleString('en')} serials (calls of 10,000)`, rps: Math.round(count / createSeconds), p50: null, p99: null, ratio: null, target: quick ? 'full run: 100,000 in ≤ 10 s' : '100,000 in ≤ 10 s', pass: quick ? null : createSeconds <= 10, note: `${createSeconds.toFixed(2)} s` })

    // One device on every serial (each a locking activation), so the next pass finds known devices.
    await load('http://127.0.0.1:3902/api/v1/serials/validate', (i: number) => ({ serialNumber: numbers[i % numbers.length], deviceId: 'dev-1' }), numbers.length)
    service.kill('SIGTERM')
    await new Promise((resolve) => service.once('exit', resolve))
    service = await start('src/server.ts', { ...env, REDIS_PREFIX: `bench-cold${Date.now()}` }, 3902)
    const miss = await load('http://127.0.0.1:3902/api/v1/serials/validate', (i: number) => ({ serialNumber: numbers[i % numbers.length], deviceId: 'dev-1' }))
    const missRatio = miss.rps / bare.rps
    rows.push({ scenario: 'REST validate, cache miss (cold L1 and L2)', rps: miss.rps, p50: miss.p50, p99: miss.p99, ratio: missRatio, target: '≥ 25 %', pass: missRatio >= 0.25 && miss.errors === 0, note: miss.rps * DURATION > numbers.length ? 'more requests than serials: later ones hit the cache' : undefined })

    const usage = await load('http://127.0.0.1:3902/api/v1/serials/usage', body)
    rows.push({ scenario: 'recordUsage, durable (acknowledged after commit)', rps: usage.rps, p50: usage.p50, p99: usage.p99, ratio: usage.rps / bare.rps, target: '≥ 5,000 events/s', pass: usage.rps >= 5000 && usage.errors === 0 })

    const rss = await fetch('http://127.0.0.1:3902/metrics').then((r) => r.text()).then((text) => Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? 0))
    rows.push({ scenario: `memory: RSS after the runs above (${count.toLocaleString('en')} serials)`, rps: null, p50: null, p99: null, ratio: null, target: '≤ 300 MB after 1,000,000 validations over 100,000 serials', pass: quick ? null : rss <= 300 * 1024 * 1024, note: `${Math.round(rss / 1024 / 1024)} MB` })
  } finally {
    service.kill('SIGTERM')
    ceiling.kill('SIGTERM')
  }

  const fmt = (v: number | null, d = 0) => v === null ? '-' : v.toFixed(d)
  console.log('\n| scenario | req/s | p50 ms | p99 ms | ratio to ceiling | target | pass |\n|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.scenario}${r.note ? ` (${r.note})` : ''} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.ratio === null ? '-' : `${(r.ratio * 100).toFixed(0)} %`} | ${r.target} | ${r.pass === null ? '-' : r.pass ? 'pass' : 'FAIL'} |`)
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  const file = new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}${noRedis ? '-no-redis' : ''}.json`, import.meta.url)
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, redis: !noRedis, connections: CONNECTIONS, durationSeconds: DURATION, rows }, null, 2))
  console.log(`\nwritten ${file.pathname}`)
}

main().catch((error) => { console.error(error); process.exit(1) })
