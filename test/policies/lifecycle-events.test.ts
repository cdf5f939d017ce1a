// serial.expiring and serial.expired: raised once each, whatever the number of instances running
// the sweep, reaching the outbox (then webhooks and serialChanged).
import t from 'tap'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { DOMAIN_EVENTS, SERIAL_CHANGE_EVENTS } from '../../src/events/domain-events.ts'
import { queryRows } from '../../src/infra/database.ts'
import { runJob } from '../../src/jobs/schedule.ts'
import { sweepExpiriesJob } from '../../src/jobs/sweep-expiries.ts'
import { buildPair, createClient, createSerial, gqlOk } from '../helper.ts'

/** One run of the expiry sweep on this instance (skipped while another holds its lock). */
function sweepExpiries (app: FastifyInstance) {
  const job = sweepExpiriesJob({ expiryWarningDays: app.deps.config.expiryWarningDays, eventsWritten: () => app.deps.relay.kick() })
  return runJob(job, { db: app.deps.database.db })
}

async function eventsOf (app: FastifyInstance, serialId: string) {
  const rows = await queryRows<{ type: string }>(app.deps.database.db, sql`select type from outbox where aggregate_id = ${serialId} and type like 'serial.expir%' order by id`)
  return rows.map((r) => r.type)
}

t.test('the new events are domain events, and the serial ones reach serialChanged', async (t) => {
  for (const type of ['policy.created', 'policy.updated', 'device.culled', 'device.limit_reached', 'serial.expiring', 'serial.expired']) {
    t.ok((DOMAIN_EVENTS as readonly string[]).includes(type), type)
  }
  for (const type of ['serial.expiring', 'serial.expired', 'device.culled', 'device.limit_reached']) t.ok(SERIAL_CHANGE_EVENTS.includes(type as never), type)
})

t.test('serial.expiring and serial.expired exactly once each, with two instances sweeping at once', async (t) => {
  const [a, b] = await buildPair(t, { background: false })
  const client = await createClient(a)
  const soon = await createSerial(a, client.id, { expiresAt: new Date(Date.now() + 2 * 86_400_000).toISOString() })
  const later = await createSerial(a, client.id, { expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString() })
  const never = await createSerial(a, client.id)
  const sweep = () => Promise.all([a, b, a, b].map(sweepExpiries))
  await sweep()
  await sweep()
  t.same(await eventsOf(a, soon.id), ['serial.expiring'], 'expiring once, inside EXPIRY_WARNING_DAYS')
  t.same(await eventsOf(a, later.id), [], 'not yet')
  t.same(await eventsOf(a, never.id), [])

  await a.deps.database.db.execute(sql`update serials set expires_at = now() - interval '1 second' where id = ${soon.id}`)
  await sweep()
  await sweep()
  t.same(await eventsOf(a, soon.id), ['serial.expiring', 'serial.expired'], 'expired once')

  // A new expiry set by updateSerial is a new story: its warning is raised again, once.
  await gqlOk(a, 'mutation ($input: UpdateSerialInput!) { updateSerial(input: $input) { id } }', { input: { id: soon.id, expiresAt: new Date(Date.now() + 86_400_000).toISOString() } })
  await sweep()
  t.same(await eventsOf(a, soon.id), ['serial.expiring', 'serial.expired', 'serial.expiring'])
  const [payload] = await queryRows<{ client_id: string, p: Record<string, unknown> }>(a.deps.database.db, sql`select client_id, payload as p from outbox where aggregate_id = ${soon.id} and type = 'serial.expired'`)
  t.equal(payload!.client_id, client.id)
  t.equal((typeof payload!.p === 'string' ? JSON.parse(payload!.p) : payload!.p).serialId, soon.id)
})
