// A page of 100 serials with their clients costs a constant number of queries (no N+1).
import t from 'tap'
import { build, createClient, gqlOk } from '../helper.ts'

const PAGE = `query ($clientId: ID) {
  serials(first: 100, filter: { clientId: $clientId }) {
    edges { cursor node { id maskedNumber status client { id clientNumber name } } }
    pageInfo { hasNextPage endCursor }
  }
}`

t.test('serials page with nested clients: same query count for 10 and 100 serials', async (t) => {
  // No background workers, and the relay drained: only this query's statements are counted.
  const app = await build(t, { background: false })
  const measure = async (clientIds: string[]) => {
    await app.deps.relay.drain()
    const before = app.deps.database.stats.queries
    const res = await gqlOk(app, PAGE, { clientId: clientIds.length === 1 ? clientIds[0] : null })
    return { queries: app.deps.database.stats.queries - before, edges: res.serials.edges }
  }
  const small = await createClient(app)
  await gqlOk(app, 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count } }', { input: { clientId: small.id, count: 10 } })
  const big = await createClient(app)
  await gqlOk(app, 'mutation ($input: CreateSerialsInput!) { createSerials(input: $input) { count } }', { input: { clientId: big.id, count: 100 } })

  const ten = await measure([small.id])
  const hundred = await measure([big.id])
  t.equal(ten.edges.length, 10)
  t.equal(hundred.edges.length, 100)
  t.ok(hundred.edges.every((e: { node: { client: { id: string } } }) => e.node.client.id === big.id), 'every serial resolves its client')
  t.equal(hundred.queries, ten.queries, 'query count does not grow with the page')
  t.ok(hundred.queries <= 2, `a list query plus one batched client query (saw ${hundred.queries})`)
})
