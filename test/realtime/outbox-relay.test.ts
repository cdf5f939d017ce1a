// The relay publishes what was committed but not yet published (e.g. after a crash), once, in order.
import { sql } from 'drizzle-orm'
import t from 'tap'
import { eventTopic } from '../../src/events/domain-events.ts'
import { queryRows } from '../../src/infra/database.ts'
import { buildPair } from '../helper.ts'

t.test('rows left unpublished are relayed by a new instance, in order, and marked', async (t) => {
  const [first, second] = await buildPair(t, { background: false })
  const clientId = `cli_RELAY${Date.now()}`
  // As after a crash between commit and publish: committed outbox rows, never published.
  await first.deps.database.db.execute(sql`insert into outbox (type, aggregate_id, client_id, payload)
    select 'usage.recorded', 'ser_RELAYTEST', ${clientId}, jsonb_build_object('n', g) from generate_series(1, 50) g`)

  const seen: number[] = []
  const unsubscribe = await second.deps.bus.subscribe(eventTopic('usage.recorded', clientId), (event) => {
    seen.push(Number((event as { payload: { n: number } }).payload.n))
  })
  t.teardown(unsubscribe)
  const relayA = first.deps.relay.drain()
  const relayB = second.deps.relay.drain()
  await Promise.all([relayA, relayB])
  await second.deps.relay.drain()
  const end = Date.now() + 5000
  while (seen.length < 50 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(seen, Array.from({ length: 50 }, (_, i) => i + 1), 'every event once, in commit order, with two relays running')
  const [pending] = await queryRows<{ n: string }>(first.deps.database.db, sql`select count(*) as n from outbox where client_id = ${clientId} and published_at is null`)
  t.equal(Number(pending?.n), 0, 'all marked published')
})
