// A page of 100 serials with their clients costs a constant number of queries (no N+1).
import t from 'tap'
import { build, createClient, gqlOk } from '../helper.ts'

const PAGE = `query ($clientId: ID, $after: String, $expiresBefore: DateTime) {
  serials(first: 100, after: $after, filter: { clientId: $clientId, expiresBefore: $expiresBefore }) {
    edges { cursor node { id maskedNumber status client { id clientNumber name } } }
    pageInfo { hasNextPage endCursor }
  }
}`

type Edge = { cursor: string, node: { client: { id: string } } }

t.test('serials page with nested clients: same query count for 10 and 100 serials, and for many clients', async (t) => {
  // No background workers. The statement counter is per app, so anything else this app runs while
  // a page is measured would be counted too: the outbox relay, kicked (after a 5 ms delay) by the
  // fixtures' own commits, once ran inside the first measurement. Drain it, then stop it for good.
  const app = await build(t, { background: false })
  const createSerials = (clientId: string, count: number, fields: Record<string, unknown> = {}) =>
    gqlOk(app, 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count } }', { input: { clientId, count, ...fields } })
  const small = await createClient(app)
  await createSerials(small.id, 10)
  const big = await createClient(app)
  await createSerials(big.id, 100)
  // Serials of five more clients, with an expiry no other test uses, so a filter finds just them
  // even on a database that other test files share.
  const expiresAt = new Date(Date.UTC(2090, 0, 1) + Math.floor(Math.random() * 1e9) * 1000).toISOString()
  const many: string[] = []
  for (let i = 0; i < 5; i++) {
    const c = await createClient(app)
    many.push(c.id)
    await createSerials(c.id, 3, { expiresAt })
  }
  await app.deps.relay.drain()
  await app.deps.relay.stop()

  const measure = async (clientId: string | null, filter: { after?: string, expiresBefore?: string } = {}) => {
    const before = app.deps.database.stats.queries
    const res = await gqlOk<{ serials: { edges: Edge[] } }>(app, PAGE, { clientId, ...filter })
    return { queries: app.deps.database.stats.queries - before, edges: res.serials.edges }
  }

  const ten = await measure(small.id)
  const hundred = await measure(big.id)
  t.equal(ten.edges.length, 10)
  t.equal(hundred.edges.length, 100)
  t.ok(hundred.edges.every((e) => e.node.client.id === big.id), 'every serial resolves its client')
  t.equal(hundred.queries, ten.queries, 'query count does not grow with the page')
  t.equal(hundred.queries, 2, 'a list query plus one batched client query')

  // The property itself: one page whose serials belong to many clients still loads all of them in
  // one client query. Ids are time-ordered, so `after` the big client's last serial and expiring by
  // the shared date leaves the five clients' 15 serials.
  const mixed = await measure(null, { after: hundred.edges.at(-1)!.cursor, expiresBefore: expiresAt })
  const clientIds = new Set(mixed.edges.map((e) => e.node.client.id))
  t.equal(mixed.edges.length, 15, 'the five clients\' serials')
  t.ok(many.every((id) => clientIds.has(id)), `the page spans the ${many.length} clients (saw ${clientIds.size})`)
  t.equal(mixed.queries, 2, `${clientIds.size} distinct clients, still one list query plus one client query`)
})
