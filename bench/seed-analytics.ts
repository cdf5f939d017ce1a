// npm run bench:analytics [-- --events N]: seeds one client with N usage events (default
// 10,000,000) spread over 30 days and 10,000 serials, plus an hourly validation rollup, in a
// scratch database (BENCH_ANALYTICS_DATABASE_URL, default …/serials_analytics), then times
// usagePatterns (30 days, DAY and HOUR over one day, client and serial) and clientStatistics
// through the GraphQL API of the compiled service. Prints a table and writes bench/results/.
import { execSync, fork } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { rebuildRollups } from '../src/domain/analytics/rollups.ts'
import type { Db } from '../src/infra/database.ts'

const root = new URL('..', import.meta.url).pathname
const DB = process.env.BENCH_ANALYTICS_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/serials_analytics'
const ADMIN = 'bench-admin-key-0123456789abcdefghijklmnopqrstuvwxyz'
const eventsArg = process.argv.indexOf('--events')
const EVENTS = eventsArg > 0 ? Number(process.argv[eventsArg + 1]) : 10_000_000
const SERIALS = 10_000
const DEVICES_PER_SERIAL = 3
const PORT = 3911
const CHUNK = 1_000_000

const seconds = (start: number) => (performance.now() - start) / 1000

async function main () {
  const admin = postgres(DB.replace(/\/[^/]*$/, '/postgres'), { max: 1, onnotice: () => {} })
  const dbName = new URL(DB).pathname.slice(1)
  await admin.unsafe(`drop database if exists ${dbName} with (force)`)
  await admin.unsafe(`create database ${dbName}`)
  await admin.end()

  execSync('npm run build', { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  const env = { ...process.env, DATABASE_URL: DB, ADMIN_API_KEY: ADMIN, LOG_LEVEL: 'warn', API_PORT: String(PORT), RATE_LIMIT: '100000', REDIS_URL: undefined }
  delete env.REDIS_URL
  const service = fork('dist/src/main/server.js', [], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  try {
    for (let i = 0; ; i++) {
      try { if ((await fetch(`http://127.0.0.1:${PORT}/health`)).ok) break } catch {}
      if (i > 300) throw new Error('service did not start')
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const gql = async (query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(`http://127.0.0.1:${PORT}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` }, body: JSON.stringify({ query, variables }) })
      const body = await res.json() as { data?: any, errors?: unknown }
      if (body.errors) throw new Error(JSON.stringify(body.errors))
      return body.data
    }
    const client = (await gql('mutation { createClient(input: { clientNumber: "ANALYTICS-1", name: "Analytics", contactEmail: "a@bench.test" }) { id } }')).createClient.id as string

    // Seeding in SQL (the service's write path is not what this measures).
    const sql = postgres(DB, { max: 1, onnotice: () => {} })
    const seedStart = performance.now()
    await sql`insert into serials (id, client_id, number_hash, number_enc, number_tail, max_usage_count, active_devices)
      select 'ser_' || lpad(g::text, 26, '0'), ${client}, md5(g::text) || md5((g + 1)::text), 'seeded', lpad(g::text, 5, '0'), ${DEVICES_PER_SERIAL}, ${DEVICES_PER_SERIAL}
      from generate_series(1, ${SERIALS}) g`
    await sql`insert into devices (id, serial_id, device_id, first_seen_at)
      select 'dev_' || lpad((s * 10 + d)::text, 26, '0'), 'ser_' || lpad(s::text, 26, '0'), 'device-' || d, now() - interval '60 days'
      from generate_series(1, ${SERIALS}) s, generate_series(1, ${DEVICES_PER_SERIAL}) d`
    for (let from = 1; from <= EVENTS; from += CHUNK) {
      const to = Math.min(EVENTS, from + CHUNK - 1)
      // Spread evenly over the last 30 days; serial and device vary with g.
      await sql`insert into usage_events (id, serial_id, client_id, device_id, kind, quantity, ip, recorded_at)
        select 'use_' || lpad(g::text, 26, '0'), 'ser_' || lpad((1 + g % ${SERIALS})::text, 26, '0'), ${client},
          'device-' || (1 + (g / ${SERIALS}) % ${DEVICES_PER_SERIAL}), 'USAGE', 1 + g % 5, '10.0.' || (g % 250) || '.1',
          now() - ((g::float8 / ${EVENTS}) * interval '30 days')
        from generate_series(${from}::bigint, ${to}::bigint) g`
      process.stderr.write(`usage events: ${to.toLocaleString('en')} (${seconds(seedStart).toFixed(0)} s)\n`)
    }
    // Hourly validation rollup: every serial, every hour of 30 days, two codes.
    await sql`insert into validation_stats (serial_id, client_id, hour, code, count)
      select 'ser_' || lpad(s::text, 26, '0'), ${client}, date_trunc('hour', now()) - h * interval '1 hour', c, 1 + (s + h) % 7
      from generate_series(1, ${SERIALS}) s, generate_series(0, 719) h, unnest(array['VALID', 'TOO_MANY_DEVICES']) c
      where (s + h) % 10 = 0 or c = 'VALID' and (s + h) % 3 = 0`
    const rollupStart = performance.now()
    await rebuildRollups(drizzle({ client: sql }) as unknown as Db)
    const rollupSeconds = seconds(rollupStart)
    await sql`analyze`
    const seedSeconds = seconds(seedStart)
    const [counts] = await sql<Array<{ events: string, stats: string }>>`select (select count(*) from usage_events) as events, (select count(*) from validation_stats) as stats`
    const { events, stats } = counts!
    await sql.end()

    const PATTERNS = 'query ($c: ID, $s: ID, $g: Granularity!, $since: DateTime) { usagePatterns(clientId: $c, serialId: $s, granularity: $g, since: $since) { bucket validations usageEvents quantity distinctDevices } }'
    const STATS = 'query ($c: ID!) { clientStatistics(clientId: $c) { serialsTotal activeDevices validationsLast24h { code count } usageLast30Days { events quantity } topSerials { serialId quantity } } }'
    const timed = async (name: string, run: () => Promise<unknown>) => {
      const times: number[] = []
      let answer: unknown
      for (let i = 0; i < 3; i++) { const t0 = performance.now(); answer = await run(); times.push(performance.now() - t0) }
      times.sort((a, b) => a - b)
      return { query: name, firstMs: Math.round(times[2]!), medianMs: Math.round(times[1]!), bestMs: Math.round(times[0]!), answer }
    }
    const dayAgo = new Date(Date.now() - 86_400_000).toISOString()
    const results = [
      await timed('usagePatterns(clientId, DAY, 30 days)', () => gql(PATTERNS, { c: client, g: 'DAY' })),
      await timed('usagePatterns(clientId, HOUR, 1 day)', () => gql(PATTERNS, { c: client, g: 'HOUR', since: dayAgo })),
      await timed('usagePatterns(serialId, DAY, 30 days)', () => gql(PATTERNS, { s: 'ser_' + '1'.padStart(26, '0'), g: 'DAY' })),
      await timed('clientStatistics(clientId)', () => gql(STATS, { c: client }))
    ]
    const patterns = (results[0]!.answer as { usagePatterns: Array<{ usageEvents: number }> }).usagePatterns
    const total = patterns.reduce((n, b) => n + b.usageEvents, 0)

    console.log(`\nseeded ${Number(events).toLocaleString('en')} usage events, ${Number(stats).toLocaleString('en')} rollup rows, ${SERIALS.toLocaleString('en')} serials in ${seedSeconds.toFixed(0)} s (rollups rebuilt from scratch in ${rollupSeconds.toFixed(0)} s)`)
    console.log(`usagePatterns DAY: ${patterns.length} buckets holding ${total.toLocaleString('en')} events\n`)
    console.log('| query | slowest of 3 ms | median ms | best ms |\n|---|---|---|---|')
    for (const r of results) console.log(`| ${r.query} | ${r.firstMs} | ${r.medianMs} | ${r.bestMs} |`)
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
    const file = new URL(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}-analytics.json`, import.meta.url)
    writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), events: Number(events), rollupRows: Number(stats), serials: SERIALS, seedSeconds, rollupSeconds, results: results.map(({ answer: _a, ...r }) => r) }, null, 2))
    console.log(`\nwritten ${file.pathname}`)
  } finally {
    service.kill('SIGTERM')
  }
}

main().catch((error) => { console.error(error); process.exit(1) })
