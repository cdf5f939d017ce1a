// Live usage across instances, resume after a disconnect, and serialChanged.
import type { FastifyInstance } from 'fastify'
import { createClient as wsClient, type Client } from 'graphql-ws'
import t from 'tap'
import WebSocket from 'ws'
import { build, buildPair, createClient, createSerial, gqlOk, ADMIN_KEY } from '../helper.ts'

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
}

function subscribe (url: string, query: string, variables: Record<string, unknown>, token = ADMIN_KEY) {
  const client: Client = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 })
  const received: any[] = []
  const errors: unknown[] = []
  let started: () => void
  const ready = new Promise<void>((resolve) => { started = resolve })
  client.on('connected', () => setTimeout(() => started(), 200))
  client.subscribe({ query, variables }, { next: (v) => { if (v.errors) errors.push(v.errors); else received.push(v.data) }, error: (e) => errors.push(e), complete: () => {} })
  return { client, received, errors, ready }
}

async function until (fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const USAGE = 'subscription ($c: ID, $s: ID, $after: Seq) { usageRecorded(clientId: $c, serialId: $s, after: $after) { id serialId deviceId quantity seq } }'

t.test('usage recorded on instance B reaches a subscriber on instance A', async (t) => {
  const [a, b] = await buildPair(t)
  const client = await createClient(a)
  const serial = await createSerial(a, client.id, { maxUsageCount: 5 })
  const otherSerial = await createSerial(a, client.id)
  const url = await listen(a)

  const all = subscribe(url, USAGE, { c: client.id })
  const one = subscribe(url, USAGE, { c: client.id, s: serial.id })
  t.teardown(() => { void all.client.dispose(); void one.client.dispose() })
  await all.ready
  await one.ready

  for (let i = 1; i <= 3; i++) {
    const res = await b.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc', quantity: i } })
    t.equal(res.statusCode, 201)
  }
  await b.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: otherSerial.serialNumber, deviceId: 'pc' } })

  await until(() => all.received.length >= 4 && one.received.length >= 3)
  t.same(one.received.map((d) => d.usageRecorded.quantity), [1, 2, 3], 'in order, filtered by serial')
  t.equal(all.received.length, 4, 'the client-wide subscriber sees both serials')
  const seqs = all.received.map((d) => Number(d.usageRecorded.seq))
  t.same(seqs, [...seqs].sort((x, y) => x - y), 'seq increases')
  t.same(all.errors, [])
})

t.test('resume with after: missed events are replayed before live ones', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const url = await listen(app)
  const record = async (quantity: number) => (await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc', quantity } })).json().usageEvent
  const first = await record(1)
  await record(2)
  await record(3)

  const resumed = subscribe(url, USAGE, { s: serial.id, after: String(first.seq) })
  t.teardown(() => resumed.client.dispose())
  await until(() => resumed.received.length >= 2 || resumed.errors.length > 0)
  t.same(resumed.errors, [])
  await resumed.ready
  await record(4)
  await until(() => resumed.received.length >= 3)
  t.same(resumed.received.map((d) => d.usageRecorded.quantity), [2, 3, 4], 'replayed 2 and 3, then live 4, nothing twice')
})

t.test('serialChanged reports state changes of the client', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const url = await listen(app)
  await app.deps.relay.drain() // serial.created is published before the subscriber arrives
  const sub = subscribe(url, 'subscription ($c: ID) { serialChanged(clientId: $c) { type serial { id status } } }', { c: client.id })
  t.teardown(() => sub.client.dispose())
  await sub.ready
  await gqlOk(app, 'mutation ($input: SuspendSerialInput!) { suspendSerial(input: $input) { id } }', { input: { id: serial.id } })
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { input: { id: serial.id, reason: 'x' } })
  await until(() => sub.received.length >= 2)
  t.same(sub.received.map((d) => d.serialChanged.type), ['serial.suspended', 'serial.revoked'])
  t.equal(sub.received[1].serialChanged.serial.status, 'REVOKED')
})

t.test('FEATURE_REAL_TIME_UPDATES=false refuses subscriptions', async (t) => {
  const app = await build(t, { env: { FEATURE_REAL_TIME_UPDATES: 'false' } })
  const client = await createClient(app)
  const url = await listen(app)
  const sub = subscribe(url, USAGE, { c: client.id })
  t.teardown(() => sub.client.dispose())
  await until(() => sub.errors.length > 0)
  t.match(JSON.stringify(sub.errors), /FEATURE_DISABLED|disabled/)
})
