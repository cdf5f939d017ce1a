// Which webhooks want an event is one rule (webhookWants): the relay's enqueue and the usage
// writer's single statement must answer alike for every kind of webhook.
import t from 'tap'
import { webhookDeliveries, webhooks } from '../../schema/index.ts'
import type { DomainEvent } from '../../src/events/domain-events.ts'
import type { PublishedEvent } from '../../src/events/outbox-relay.ts'
import { insertUsageBatch } from '../../src/domain/usage/usage-writer.ts'
import { build, createClient, createSerial } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'

class Rollback extends Error {}

t.test('enqueue and the usage writer apply the same rule', async (t) => {
  // A database of its own: a webhook for every client would catch other files' events.
  const url = await freshDatabase(t)
  const app = await build(t, { background: false, env: url ? { DATABASE_URL: url } : {} })
  const db = app.deps.database.db
  const mine = await createClient(app)
  const other = await createClient(app)
  const serial = await createSerial(app, mine.id)

  const usage: DomainEvent = {
    type: 'usage.recorded',
    aggregateId: serial.id,
    clientId: mine.id,
    payload: { id: 'use_x', seq: 1, serialId: serial.id, clientId: mine.id, deviceId: 'pc', kind: 'USAGE', quantity: 1, feature: null, recordedAt: new Date().toISOString() }
  }
  const revoked: DomainEvent = { type: 'serial.revoked', aggregateId: serial.id, clientId: mine.id, payload: { serialId: serial.id, clientId: mine.id, status: 'REVOKED', reason: 'test' } }
  const policy: DomainEvent = { type: 'policy.created', aggregateId: 'pol_x', clientId: null, payload: { policyId: 'pol_x', name: 'P', maxDevices: 1 } }
  const published = [usage, revoked, policy].map((e, i): PublishedEvent => ({ ...e, id: i + 1, createdAt: new Date().toISOString() }))

  const cases: Array<{ name: string, hook: { clientId: string | null, events: string[], enabled?: boolean, deletedAt?: Date }, wants: string[] }> = [
    { name: 'every client, every event', hook: { clientId: null, events: [] }, wants: ['usage.recorded', 'serial.revoked', 'policy.created'] },
    { name: 'the client, every event', hook: { clientId: mine.id, events: [] }, wants: ['usage.recorded', 'serial.revoked'] },
    { name: 'another client', hook: { clientId: other.id, events: [] }, wants: [] },
    { name: 'the client, usage only', hook: { clientId: mine.id, events: ['usage.recorded'] }, wants: ['usage.recorded'] },
    { name: 'the client, revocations only', hook: { clientId: mine.id, events: ['serial.revoked'] }, wants: ['serial.revoked'] },
    { name: 'every client, policies only', hook: { clientId: null, events: ['policy.created'] }, wants: ['policy.created'] },
    { name: 'disabled', hook: { clientId: mine.id, events: [], enabled: false }, wants: [] },
    { name: 'deleted', hook: { clientId: null, events: [], deletedAt: new Date() }, wants: [] }
  ]
  let n = 0
  for (const c of cases) {
    // Each case alone, in a transaction rolled back at its end.
    await db.transaction(async (tx) => {
      await tx.insert(webhooks).values({ id: `whk_match${n}`, url: 'http://127.0.0.1:9/hook', secretEnc: 'x', enabled: true, ...c.hook })
      const enqueued = await app.deps.services.webhooks.enqueue(tx, published)
      const types = (await tx.select().from(webhookDeliveries)).map((d) => d.eventType).sort()
      t.same(types, [...c.wants].sort(), `${c.name}: enqueued for ${c.wants.join(', ') || 'nothing'}`)
      t.equal(enqueued, c.wants.length)
      const stored = await insertUsageBatch(tx, [{ id: `use_match${n++}`, serialId: serial.id, clientId: mine.id, deviceId: 'pc' }], 'claim')
      const [row] = [...stored.values()]
      t.equal(row?.claimed, !c.wants.includes('usage.recorded'), `${c.name}: the usage writer ${c.wants.includes('usage.recorded') ? 'leaves its event to the relay' : 'claims its event'}`)
      throw new Rollback()
    }).catch((error: unknown) => { if (!(error instanceof Rollback)) throw error })
  }
})
