// createSerials with an idempotency key: the key is claimed before any serial is made. A call
// reusing the key for another request is CONFLICT and writes nothing (no serial, audit entry or
// event); racing calls with different bodies make exactly one batch. Under a policy too, where the
// policy is read inside the answer's transaction (on PGlite, a read beside it waited forever).
import { sql } from 'drizzle-orm'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { queryRows } from '../../src/infra/database.ts'
import { build, buildPair, createClient, gql, gqlOk } from '../helper.ts'

const CREATE_MANY = 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count serials { serialNumber } } }'

async function written (app: FastifyInstance, clientId: string) {
  const db = app.deps.database.db
  const [serials] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from serials where client_id = ${clientId}`)
  const [audit] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from audit_log where client_id = ${clientId} and action = 'serial.created'`)
  const [events] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from outbox where client_id = ${clientId} and type = 'serial.created'`)
  return { serials: serials?.n, audit: audit?.n, events: events?.n }
}

/** Fails instead of hanging: a call that never answers is the defect. */
function within<T> (ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms) })])
    .finally(() => clearTimeout(timer))
}

t.test('a key reused for another batch is CONFLICT and writes nothing; the same request replays', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const input = { clientId: client.id, count: 3, idempotencyKey: 'batch-1' }
  const first = await gqlOk(app, CREATE_MANY, { input })
  const after = await written(app, client.id)
  t.same(after, { serials: 3, audit: 1, events: 3 })
  for (const other of [{ count: 4 }, { isDemo: true }, { metadata: { plan: 'gold' } }, { maxDevices: 9 }]) {
    const res = await gql(app, CREATE_MANY, { input: { ...input, ...other } })
    t.equal(res.errors?.[0]?.extensions.code, 'CONFLICT', `${JSON.stringify(other)} under the used key`)
  }
  t.same(await written(app, client.id), after, 'no serial, audit entry or event from the refused calls')
  const replay = await gqlOk(app, CREATE_MANY, { input })
  t.same(replay.createSerials, first.createSerials, 'the retry replays the first batch')
  t.same(await written(app, client.id), after)
})

t.test('racing batches with one key and different bodies: one batch, the others CONFLICT', async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const client = await createClient(a)
  const results = await within(60_000, 'racing createSerials', Promise.all(Array.from({ length: 8 }, (_, i) =>
    gql(i % 2 ? a : b, CREATE_MANY, { input: { clientId: client.id, count: i + 1, idempotencyKey: 'race-batch' } }))))
  const winners = results.filter((r) => !r.errors)
  t.equal(winners.length, 1, 'one call wins')
  t.same(results.filter((r) => r.errors).map((r) => r.errors?.[0]?.extensions.code), Array(7).fill('CONFLICT'), 'the others are CONFLICT')
  const count = winners[0]!.data!.createSerials.count as number
  t.same(await written(a, client.id), { serials: count, audit: 1, events: count }, 'exactly the winner\'s batch is written')
})

t.test('under a policy, racing retries of one keyed batch answer (no connection waits on another)', async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const client = await createClient(a)
  const policy = await gqlOk(a, 'mutation ($i: CreatePolicyInput!) { createPolicy(input: $i) { id } }', { i: { name: `Batch ${Date.now()}`, maxDevices: 2 } })
  const input = { clientId: client.id, count: 5, policyId: policy.createPolicy.id, idempotencyKey: 'policy-batch' }
  const one = await within(20_000, 'one keyed batch under a policy', gql(a, CREATE_MANY, { input }))
  t.equal(one.errors, undefined, 'one call')
  // More racers than the pool has connections (DB_POOL_MAX=4 in tests).
  const racing = await within(30_000, 'racing keyed batches under a policy', Promise.all(Array.from({ length: 8 }, (_, i) =>
    gql(i % 2 ? a : b, CREATE_MANY, { input: { ...input, idempotencyKey: 'policy-race' } }))))
  t.ok(racing.every((r) => !r.errors), 'every racer answers')
  t.equal(new Set(racing.map((r) => r.data?.createSerials.serials[0].serialNumber)).size, 1, 'with the same batch')
  t.same(await written(a, client.id), { serials: 10, audit: 2, events: 10 })
})
