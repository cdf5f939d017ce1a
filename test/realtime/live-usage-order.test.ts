// Issue 28, item 4: usageRecorded delivers each subscriber's events in seq order with no gap, and
// resuming with after: <last seq received> gets exactly the missing events once, whatever mix of
// paths wrote them (REST and GraphQL, with and without an idempotency key) and on whichever of two
// instances. Usage with a key is published by the relay, usage without one right after commit,
// and concurrent transactions commit in another order than they took their seqs: none of that may
// reach a subscriber. Also: a cursor handed out by usageByFeature (throughSeq) is safe to resume
// after, and a transaction holding a seq holds back the later ones until it ends.
import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { createClient as wsClient, type Client } from 'graphql-ws'
import t from 'tap'
import WebSocket from 'ws'
import { queryRows } from '../../src/infra/database.ts'
import { insertUsageBatch } from '../../src/domain/usage/usage-writer.ts'
import { newId } from '../../src/kernel/ids.ts'
import { ADMIN_KEY, build, buildPair, createClient, createSerial, databaseUrl, gqlOk, until } from '../helper.ts'

const USAGE = 'subscription ($c: ID, $s: ID, $after: Seq) { usageRecorded(clientId: $c, serialId: $s, after: $after) { id serialId clientId seq } }'
const RECORD = 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { usageEvent { id seq } } }'

type Tap = { teardown (fn: () => unknown): void }
interface Received { id: string, serialId: string, clientId: string, seq: number, at: number }
interface Target { id: string, serialNumber: string, clientId: string }

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
}

function subscribe (t: Tap, url: string, variables: Record<string, unknown>) {
  const client: Client = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
  t.teardown(() => client.dispose())
  const received: Received[] = []
  const errors: unknown[] = []
  let started: () => void
  const ready = new Promise<void>((resolve) => { started = resolve })
  client.on('connected', () => setTimeout(() => started(), 300))
  client.subscribe({ query: USAGE, variables }, {
    next: (v) => {
      if (v.errors) errors.push(v.errors)
      else {
        const e = (v.data as { usageRecorded: Omit<Received, 'seq' | 'at'> & { seq: string } }).usageRecorded
        received.push({ ...e, seq: Number(e.seq), at: performance.now() })
      }
    },
    error: (e) => errors.push(e),
    complete: () => {}
  })
  return { client, received, errors, ready }
}

/** One usage event through one of the four paths; resolves with its id once acknowledged. */
async function record (app: FastifyInstance, target: Target, path: number): Promise<{ id: string, seq: number, path: string }> {
  const keyed = path % 2 === 1
  const key = keyed ? randomUUID() : undefined
  if (path < 2) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', headers: key ? { 'idempotency-key': key } : {}, payload: { serialNumber: target.serialNumber, deviceId: 'pc' } })
    if (res.statusCode !== 201) throw new Error(`REST usage: ${res.statusCode} ${res.body}`)
    const e = res.json().usageEvent
    return { id: e.id, seq: Number(e.seq), path: keyed ? 'REST+key' : 'REST' }
  }
  const data = await gqlOk<{ recordUsage: { usageEvent: { id: string, seq: string } } }>(app, RECORD, { input: { serialNumber: target.serialNumber, deviceId: 'pc', idempotencyKey: key } }, null)
  return { id: data.recordUsage.usageEvent.id, seq: Number(data.recordUsage.usageEvent.seq), path: keyed ? 'GraphQL+key' : 'GraphQL' }
}

async function storedRows (app: FastifyInstance, where: { clientId?: string, serialId?: string, from?: number, to?: number }): Promise<Array<{ id: string, seq: number }>> {
  const rows = await queryRows<{ id: string, seq: string | number }>(app.deps.database.db, sql`
    select id, seq from usage_events
    where (${where.clientId ?? null}::text is null or client_id = ${where.clientId ?? null})
      and (${where.serialId ?? null}::text is null or serial_id = ${where.serialId ?? null})
      and seq >= ${where.from ?? 0} and seq <= ${where.to ?? Number.MAX_SAFE_INTEGER}
    order by seq`)
  return rows.map((r) => ({ id: r.id, seq: Number(r.seq) }))
}

/** How far from seq order a delivery is: inversions and the largest lateness (in seqs). */
function disorder (seqs: number[]): { inversions: number, maxLate: number } {
  let inversions = 0
  let maxLate = 0
  let highest = -1
  for (const seq of seqs) {
    if (seq < highest) { inversions++; maxLate = Math.max(maxLate, highest - seq) }
    highest = Math.max(highest, seq)
  }
  return { inversions, maxLate }
}

const countBy = (values: string[]) => values.reduce<Record<string, number>>((n, v) => ({ ...n, [v]: (n[v] ?? 0) + 1 }), {})

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
}

/** Runs `workers` loops per instance, each recording through the four paths in turn, until stop(). */
function load (instances: FastifyInstance[], targets: Target[], workers: number, recorded: Map<string, { seq: number, ackAt: number, path: string, target: Target }>, limit = Number.POSITIVE_INFINITY) {
  let running = true
  let n = 0
  const loops = instances.flatMap((app, a) => Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; running && n < limit; i++) {
      n++
      const target = targets[(i + w) % targets.length]!
      const r = await record(app, target, (i + w + a) % 4)
      recorded.set(r.id, { seq: r.seq, ackAt: performance.now(), path: r.path, target })
    }
  }))
  const done = Promise.all(loops)
  return { done, stop: async () => { running = false; await done } }
}

t.test('mixed paths under concurrency on two instances: every subscriber gets its stored rows in seq order, no gap, once', async (t) => {
  const [a, b] = await buildPair(t)
  const c1 = await createClient(a)
  const c2 = await createClient(a)
  const s1 = { ...await createSerial(a, c1.id, { maxUsageCount: 5 }), clientId: c1.id }
  const s2 = { ...await createSerial(a, c1.id, { maxUsageCount: 5 }), clientId: c1.id }
  const s3 = { ...await createSerial(a, c2.id, { maxUsageCount: 5 }), clientId: c2.id }
  const urlA = await listen(a)
  const urlB = b === a ? urlA : await listen(b)
  const subscribers = {
    'client c1 on A': { sub: subscribe(t, urlA, { c: c1.id }), filter: { clientId: c1.id } },
    'serial s1 on A': { sub: subscribe(t, urlA, { s: s1.id }), filter: { serialId: s1.id } },
    'client c1 on B': { sub: subscribe(t, urlB, { c: c1.id }), filter: { clientId: c1.id } },
    'client c2 on B': { sub: subscribe(t, urlB, { c: c2.id }), filter: { clientId: c2.id } },
    'every client on B': { sub: subscribe(t, urlB, {}), filter: {} }
  }
  await Promise.all(Object.values(subscribers).map((s) => s.sub.ready))

  const recorded = new Map<string, { seq: number, ackAt: number, path: string, target: Target }>()
  const started = performance.now()
  const run = load([a, b], [s1, s2, s3], 6, recorded, 1200)
  await run.done
  const seconds = (performance.now() - started) / 1000
  t.comment(`${recorded.size} events in ${seconds.toFixed(1)} s (${Math.round(recorded.size / seconds)}/s), by path: ${JSON.stringify(countBy([...recorded.values()].map((r) => r.path)))}`)
  const wants = (filter: { clientId?: string, serialId?: string }, r: { target: Target }) =>
    (!filter.clientId || r.target.clientId === filter.clientId) && (!filter.serialId || r.target.id === filter.serialId)
  const arrived = () => Object.values(subscribers).every(({ sub, filter }) => {
    const ids = new Set(sub.received.map((e) => e.id))
    return [...recorded].every(([id, r]) => !wants(filter, r) || ids.has(id))
  })
  await until(arrived, 'every acknowledged event at every subscriber', 30_000).catch((error: unknown) => t.fail(String(error)))
  // Duplicates and stragglers would come late: give them time before comparing.
  await new Promise((resolve) => setTimeout(resolve, 1000))

  for (const [name, { sub, filter }] of Object.entries(subscribers)) {
    t.same(sub.errors, [], `${name}: no errors`)
    const seqs = sub.received.map((e) => e.seq)
    const { inversions, maxLate } = disorder(seqs)
    t.equal(inversions, 0, `${name}: strictly increasing seqs (${seqs.length} events; ${inversions} inversions, up to ${maxLate} seqs late)`)
    t.equal(new Set(seqs).size, seqs.length, `${name}: no event twice`)
    // Compared with what PostgreSQL holds for the filter over the same range: nothing skipped.
    const stored = await storedRows(a, { ...filter, from: seqs[0] ?? 0, to: Math.max(...seqs) })
    const missing = stored.filter((r) => !seqs.includes(r.seq)).length
    t.equal(missing, 0, `${name}: no gap relative to the ${stored.length} stored rows of its filter in that range`)
    const latencies = sub.received.flatMap((e) => { const r = recorded.get(e.id); return r ? [e.at - r.ackAt] : [] })
    t.comment(`${name}: acknowledgement → receipt p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms`)
  }
  // The filtered subscribers got every row of their filter from their first event on.
  for (const name of ['client c1 on A', 'serial s1 on A', 'client c1 on B', 'client c2 on B'] as const) {
    const { sub, filter } = subscribers[name]
    t.same(sub.received.map((e) => e.id), (await storedRows(a, filter)).map((r) => r.id), `${name}: exactly the stored rows of its filter, in seq order`)
  }
})

t.test('resume with after: the last seq received gets exactly the missing events once, while usage keeps coming on both instances', async (t) => {
  const [a, b] = await buildPair(t)
  const c1 = await createClient(a)
  const s1 = { ...await createSerial(a, c1.id, { maxUsageCount: 5 }), clientId: c1.id }
  const s2 = { ...await createSerial(a, c1.id, { maxUsageCount: 5 }), clientId: c1.id }
  const urls = [await listen(a), b === a ? undefined : await listen(b)]
  const recorded = new Map<string, { seq: number, ackAt: number, path: string, target: Target }>()

  const sessions: Received[][] = []
  // Before any event was received, the cursor is usageByFeature's throughSeq (as the console does).
  let last = Number((await gqlOk(a, 'query ($c: ID) { usageByFeature(clientId: $c) { throughSeq } }', { c: c1.id })).usageByFeature.throughSeq)
  let run: ReturnType<typeof load> | undefined
  for (let round = 0; round < 8; round++) {
    const sub = subscribe(t, urls[round % 2] ?? urls[0]!, { c: c1.id, after: String(last) })
    await sub.ready
    // The load starts once the first subscriber is live, so it sees every event from the start.
    run ??= load([a, b], [s1, s2], 4, recorded)
    await new Promise((resolve) => setTimeout(resolve, 250 + 50 * round))
    // Stop at whatever was received by now (mid-stream), as a dropped connection would.
    await sub.client.dispose()
    t.same(sub.errors, [], `round ${round}: no errors`)
    sessions.push([...sub.received])
    // As the clients did: resume after the highest seq seen (the last one, when in order).
    if (sub.received.length > 0) last = Math.max(last, ...sub.received.map((e) => e.seq))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await run!.stop()
  t.comment(`${recorded.size} events recorded over ${sessions.length} sessions (${sessions.map((s) => s.length).join(', ')} events each)`)
  const final = subscribe(t, urls[0]!, { c: c1.id, after: String(last) })
  const stored = await storedRows(a, { clientId: c1.id })
  await until(() => final.received.length > 0 && final.received.at(-1)!.seq >= stored.at(-1)!.seq, 'the resumed subscriber to catch up', 20_000).catch((error: unknown) => t.fail(String(error)))
  await new Promise((resolve) => setTimeout(resolve, 500))
  sessions.push([...final.received])

  const all = sessions.flat()
  const seqs = all.map((e) => e.seq)
  const { inversions, maxLate } = disorder(seqs)
  t.equal(inversions, 0, `sessions end to end: strictly increasing seqs (${inversions} inversions, up to ${maxLate} seqs late)`)
  const got = new Set(all.map((e) => e.id))
  const lost = stored.filter((r) => !got.has(r.id))
  t.equal(lost.length, 0, `nothing lost across ${sessions.length - 1} resumes (${lost.length} of ${stored.length} stored events never delivered)`)
  t.equal(got.size, all.length, 'nothing delivered twice')
  t.same(all.map((e) => e.id), stored.map((r) => r.id), 'the sessions together are exactly the stored rows, in seq order')
})

t.test('a transaction holding a seq holds back later seqs until it ends; usageByFeature\'s throughSeq stays below it', { skip: databaseUrl ? false : 'needs PostgreSQL: PGlite runs one transaction at a time' }, async (t) => {
  const app = await build(t)
  const db = app.deps.database.db
  const [cache] = await queryRows<{ seqcache: string | number }>(db, sql`select seqcache from pg_sequence where seqrelid = 'usage_events_seq_seq'::regclass`)
  t.equal(Number(cache?.seqcache), 1, 'usage_events_seq_seq hands out one value at a time (CACHE 1): the watermark relies on it')
  // Three clients, so that no two transactions below wait on each other's rollup rows.
  const [heldClient, holeClient, laterClient] = [await createClient(app), await createClient(app), await createClient(app)]
  const [heldSerial, holeSerial] = [await createSerial(app, heldClient.id), await createSerial(app, holeClient.id)]
  const laterSerial = { ...await createSerial(app, laterClient.id, { maxUsageCount: 5 }), clientId: laterClient.id }
  const mine = new Set([heldClient.id, holeClient.id, laterClient.id])
  const url = await listen(app)
  const sub = subscribe(t, url, {})
  await sub.ready
  const seen = () => sub.received.filter((e) => mine.has(e.clientId)).map((e) => e.seq)

  /** Takes a seq in a transaction left open; settle() ends it (commit or roll back). */
  async function hold (clientId: string, serialId: string, end: 'commit' | 'rollback') {
    let settle!: () => void
    let seq = 0
    const taken = new Promise<void>((resolve, reject) => {
      const done = db.transaction(async (tx) => {
        const stored = await insertUsageBatch(tx, [{ id: newId('use'), serialId, clientId, deviceId: 'held', recordedAt: new Date() }])
        seq = [...stored.values()][0]!.seq
        resolve()
        await new Promise<void>((resolve, reject) => { settle = end === 'commit' ? resolve : () => reject(new Error('rolled back on purpose')) })
      }).then(() => app.deps.relay.kick(), (error: unknown) => { if (end === 'commit') reject(error) })
      t.teardown(() => { settle?.(); return done })
    })
    await taken
    return { seq, settle: () => settle() }
  }
  const held = await hold(heldClient.id, heldSerial.id, 'commit')
  const hole = await hold(holeClient.id, holeSerial.id, 'rollback')
  const later = [await record(app, laterSerial, 0), await record(app, laterSerial, 2), await record(app, laterSerial, 1)]
  t.ok(held.seq < hole.seq && later.every((e) => e.seq > hole.seq), `later events (${later.map((e) => e.seq).join(', ')}) took higher seqs than the open transactions (${held.seq}, ${hole.seq}) and committed first`)

  const feature = await gqlOk(app, 'query ($c: ID) { usageByFeature(clientId: $c) { throughSeq features { events } } }', { c: laterClient.id })
  t.ok(Number(feature.usageByFeature.throughSeq) < held.seq, `usageByFeature throughSeq (${feature.usageByFeature.throughSeq}) is below the seq still being written (${held.seq}): resuming after it cannot skip that row`)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(seen(), [], 'nothing is delivered past a seq whose transaction may still commit')

  held.settle()
  await new Promise((resolve) => setTimeout(resolve, 500))
  // As far as a reader can tell, the transaction still open could hold a seq below the committed one.
  t.same(seen(), [], 'one of the two committed: still nothing while the other is open')
  hole.settle()
  await until(() => seen().length >= 4, 'the later events once the hole is known empty', 5000).catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(seen(), [held.seq, ...later.map((e) => e.seq).sort((x, y) => x - y)], 'then the later ones, in seq order; the rolled-back seq is skipped')
  t.same(sub.errors, [])
})
