// Issue 28, item 4, as reported: an instance is killed (SIGKILL) while usage comes in on both
// instances through every path; its subscriber reconnects to the other instance and resumes with
// after: <last seq received>. Both subscribers must end with exactly the stored rows of their
// filter, in seq order, each once. Two real server processes on PostgreSQL and Redis.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import { createClient as wsClient, type Client } from 'graphql-ws'
import t from 'tap'
import WebSocket from 'ws'
import { queryRows } from '../../src/infra/database.ts'
import { ADMIN_KEY, build, createClient, createSerial, databaseUrl, freePort, redisUrl, TEST_DATA_DIR, until } from '../helper.ts'

const missing = !databaseUrl || !redisUrl ? 'PostgreSQL and Redis (TEST_DATABASE_URL, TEST_REDIS_URL)' : null
if (missing && process.env.CI === 'true') throw new Error(`kill-resume test needs ${missing}`)

const root = new URL('../..', import.meta.url).pathname
const USAGE = 'subscription ($c: ID, $after: Seq) { usageRecorded(clientId: $c, after: $after) { id seq } }'
const RECORD = 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { usageEvent { id } } }'

function startInstance (port: number, prefix: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/main/server.ts'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, API_PORT: String(port), DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, REDIS_PREFIX: prefix, ADMIN_API_KEY: ADMIN_KEY, DATA_DIR: TEST_DATA_DIR, LOG_LEVEL: 'error', DB_POOL_MAX: '4', RATE_LIMIT: '1000000', VALIDATE_RATE_LIMIT: '1000000', NODE_ENV: 'test' }
  })
}

async function ready (port: number): Promise<void> {
  await until(async () => (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => null))?.ok === true, `instance on ${port}`, 60_000)
}

/** A subscriber that, when its socket drops, resumes on `fallback` after the last seq it received. */
function resumingSubscriber (t: { teardown (fn: () => unknown): void }, port: number, fallback: number, clientId: string) {
  const received: Array<{ id: string, seq: number }> = []
  const errors: unknown[] = []
  const sessions: number[] = []
  let resumed = false
  const open = (on: number, after?: number) => {
    const client: Client = wsClient({ url: `ws://127.0.0.1:${on}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
    t.teardown(() => client.dispose())
    sessions.push(on)
    let connected: () => void
    const live = new Promise<void>((resolve) => { connected = resolve })
    client.on('connected', () => setTimeout(() => connected(), 300))
    client.on('closed', () => {
      if (resumed || on === fallback) return
      resumed = true
      // As the clients did: after the highest seq seen (the last one, when in order).
      open(fallback, received.length > 0 ? Math.max(...received.map((e) => e.seq)) : undefined)
    })
    client.subscribe({ query: USAGE, variables: { c: clientId, after: after === undefined ? undefined : String(after) } }, {
      next: (v) => {
        if (v.errors) { errors.push(v.errors); return }
        const e = (v.data as { usageRecorded: { id: string, seq: string } }).usageRecorded
        received.push({ id: e.id, seq: Number(e.seq) })
      },
      error: (error) => { if (on === fallback) errors.push(error) },
      complete: () => {}
    })
    return live
  }
  return { received, errors, sessions, live: open(port) }
}

t.test('SIGKILL one instance mid-stream: its subscriber resumes on the other and misses nothing, twice nothing', { skip: missing ? `needs ${missing}` : false }, async (t) => {
  const prefix = `kill${process.pid}${Date.now()}`
  // Migrations and fixtures from this process, so the two instances start on a migrated database.
  const admin = await build(t, { background: false, env: { REDIS_PREFIX: prefix } })
  const client = await createClient(admin)
  const serials = [await createSerial(admin, client.id, { maxUsageCount: 5 }), await createSerial(admin, client.id, { maxUsageCount: 5 })]
  const [portA, portB] = [await freePort(), await freePort()]
  const a = startInstance(portA, prefix)
  const b = startInstance(portB, prefix)
  t.teardown(() => { a.kill('SIGKILL'); b.kill('SIGKILL') })
  await Promise.all([ready(portA), ready(portB)])

  const onA = resumingSubscriber(t, portA, portB, client.id)
  const onB = resumingSubscriber(t, portB, portB, client.id)
  await Promise.all([onA.live, onB.live])

  let running = true
  let aDead = false
  const acknowledged = new Set<string>()
  const record = async (port: number, i: number) => {
    const serial = serials[i % 2]!
    const key = i % 4 >= 2 ? randomUUID() : undefined
    try {
      if (i % 2 === 0) {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/serials/usage`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) }, body: JSON.stringify({ serialNumber: serial.serialNumber, deviceId: 'pc' }) })
        if (res.status === 201) acknowledged.add((await res.json() as { usageEvent: { id: string } }).usageEvent.id)
      } else {
        const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: RECORD, variables: { input: { serialNumber: serial.serialNumber, deviceId: 'pc', idempotencyKey: key } } }) })
        const id = (await res.json() as { data?: { recordUsage?: { usageEvent?: { id: string } } } }).data?.recordUsage?.usageEvent?.id
        if (id) acknowledged.add(id)
      }
    } catch {
      // A request in flight on the killed instance: not acknowledged.
    }
  }
  const workers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = w; running; i += 8) {
      const port = w % 2 === 0 && !aDead ? portA : portB
      await record(port, i)
    }
  })
  await new Promise((resolve) => setTimeout(resolve, 1500))
  a.kill('SIGKILL')
  aDead = true
  await new Promise((resolve) => setTimeout(resolve, 1500))
  running = false
  await Promise.all(workers)

  const stored = (await queryRows<{ id: string, seq: string | number }>(admin.deps.database.db, sql`select id, seq from usage_events where client_id = ${client.id} order by seq`)).map((r) => ({ id: r.id, seq: Number(r.seq) }))
  t.ok([...acknowledged].every((id) => stored.some((r) => r.id === id)), `every one of the ${acknowledged.size} acknowledged events is stored (${stored.length} stored)`)
  const lastSeq = stored.at(-1)!.seq
  await until(() => [onA, onB].every((s) => (s.received.at(-1)?.seq ?? 0) >= lastSeq), 'both subscribers to catch up', 30_000).catch((error: unknown) => t.fail(String(error)))
  await new Promise((resolve) => setTimeout(resolve, 1000))

  for (const [name, s] of Object.entries({ 'subscriber on A (resumed on B)': onA, 'subscriber on B': onB })) {
    t.same(s.errors, [], `${name}: no errors`)
    const seqs = s.received.map((e) => e.seq)
    const inversions = seqs.filter((seq, i) => i > 0 && seq <= seqs[i - 1]!).length
    t.equal(inversions, 0, `${name}: strictly increasing seqs (${seqs.length} events, ${inversions} out of order)`)
    const got = new Set(s.received.map((e) => e.id))
    t.equal(stored.filter((r) => !got.has(r.id)).length, 0, `${name}: none of the ${stored.length} stored events missed`)
    t.same(s.received.map((e) => e.id), stored.map((r) => r.id), `${name}: exactly the stored rows, in seq order, each once`)
  }
  t.same(onA.sessions, [portA, portB], 'the subscriber on A lost its instance and resumed on B')
})
