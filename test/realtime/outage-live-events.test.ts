// Issue 12, item 14: usage recorded while Redis is down reaches every open usageRecorded
// subscription exactly once, in seq order, after Redis returns. Two instances on PostgreSQL and a
// Redis this test owns (killed and restarted mid-test); subscribers on both instances.
import type { FastifyInstance } from 'fastify'
import { createClient as wsClient, type Client } from 'graphql-ws'
import t from 'tap'
import WebSocket from 'ws'
import { ADMIN_KEY, build, createClient, createSerial, databaseUrl, until } from '../helper.ts'
import { ownRedis, redisServerBinary } from '../redis-server.ts'

const missing = !databaseUrl ? 'PostgreSQL (TEST_DATABASE_URL) shared by two instances' : !redisServerBinary ? 'redis-server' : null
if (missing && process.env.CI === 'true') throw new Error(`outage tests need ${missing}`)

const USAGE = 'subscription ($c: ID, $s: ID) { usageRecorded(clientId: $c, serialId: $s) { id serialId seq } }'

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
}

interface Received { id: string, serialId: string, seq: string }

function subscribe (t: { teardown (fn: () => unknown): void }, url: string, variables: Record<string, unknown>) {
  const client: Client = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
  t.teardown(() => client.dispose())
  const received: Received[] = []
  const errors: unknown[] = []
  let started: () => void
  const ready = new Promise<void>((resolve) => { started = resolve })
  client.on('connected', () => setTimeout(() => started(), 300))
  client.subscribe({ query: USAGE, variables }, {
    next: (v) => { if (v.errors) errors.push(v.errors); else received.push((v.data as { usageRecorded: Received }).usageRecorded) },
    error: (e) => errors.push(e),
    complete: () => {}
  })
  return { received, errors, ready }
}

t.test('usage recorded during a Redis outage reaches each subscriber exactly once, in seq order', { skip: missing ? `needs ${missing}` : false }, async (t) => {
  const redis = await ownRedis(t)
  const env = { REDIS_URL: redis.url, DATABASE_URL: databaseUrl, REDIS_PREFIX: `outage${process.pid}` }
  const a = await build(t, { env })
  const b = await build(t, { env })
  await until(() => a.deps.bus.healthy() && b.deps.bus.healthy(), 'both buses to be heard', 20_000)
  const client = await createClient(a)
  const serial = await createSerial(a, client.id, { maxUsageCount: 5 })
  const other = await createSerial(a, client.id, { maxUsageCount: 5 })
  const [urlA, urlB] = [await listen(a), await listen(b)]

  const subscribers = {
    'client-wide on B': subscribe(t, urlB, { c: client.id }),
    'one serial on B': subscribe(t, urlB, { s: serial.id }),
    'client-wide on A': subscribe(t, urlA, { c: client.id })
  }
  await Promise.all(Object.values(subscribers).map((s) => s.ready))

  const recorded: Array<{ id: string, serialId: string }> = []
  const record = async (app: FastifyInstance, target: { id: string, serialNumber: string }) => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: target.serialNumber, deviceId: 'pc' } })
    t.equal(res.statusCode, 201, 'usage acknowledged', { diagnostic: false })
    recorded.push({ id: res.json().usageEvent.id, serialId: target.id })
  }
  const expected = (name: string) => recorded.filter((e) => name !== 'one serial on B' || e.serialId === serial.id).map((e) => e.id)
  const allArrived = () => Object.entries(subscribers).every(([name, s]) => expected(name).every((id) => s.received.some((r) => r.id === id)))

  for (let i = 0; i < 4; i++) await record(i % 2 ? b : a, i % 3 ? serial : other)
  await until(allArrived, 'events before the outage', 20_000)

  // Usage keeps coming through both instances while Redis dies, stays down and comes back, as in
  // production: relay batches are cut mid-publish and resume while subscribers re-subscribe.
  let recording = true
  const load = (async () => {
    for (let i = 0; recording; i++) {
      await record(i % 2 ? b : a, i % 3 ? serial : other)
      await new Promise((resolve) => setTimeout(resolve, 15))
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 300))
  await redis.stop()
  await until(() => !a.deps.bus.healthy() && !b.deps.bus.healthy(), 'both instances to notice the outage', 20_000)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  await redis.start()
  await until(() => a.deps.bus.healthy() && b.deps.bus.healthy(), 'both buses to be heard again', 20_000)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  recording = false
  await load
  t.comment(`${recorded.length} events recorded`)
  await until(allArrived, 'every event after recovery', 20_000)
  // Duplicates would arrive late (re-published batches): give them time before counting.
  await new Promise((resolve) => setTimeout(resolve, 2500))

  for (const [name, s] of Object.entries(subscribers)) {
    t.same(s.errors, [], `${name}: no errors`)
    t.same(s.received.map((r) => r.id).sort(), [...expected(name)].sort(), `${name}: each of ${expected(name).length} events exactly once`)
    const seqs = s.received.map((r) => BigInt(r.seq))
    t.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!), `${name}: in seq order`)
  }
})
