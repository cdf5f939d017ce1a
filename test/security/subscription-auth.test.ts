// Subscriptions authenticate in connection_init; a bad credential closes the socket with 4403,
// and a subscription ends (4403) on every instance when its API key is revoked or its token expires.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient as wsClient } from 'graphql-ws'
import WebSocket from 'ws'
import { ADMIN_KEY, build, buildPair, createClient, createSerial, gqlOk } from '../helper.ts'

const SUB = 'subscription ($c: ID) { serialChanged(clientId: $c) { type serial { id } } }'

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

async function open (port: number, connectionParams: Record<string, unknown>, clientId: string) {
  const closed: { code?: number } = {}
  const client = wsClient({
    url: `ws://127.0.0.1:${port}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams,
    retryAttempts: 0,
    lazy: true,
    on: { closed: (event) => { closed.code = (event as { code: number }).code } }
  })
  const events: unknown[] = []
  const ended = new Promise<{ error?: unknown }>((resolve) => {
    client.subscribe({ query: SUB, variables: { c: clientId } }, {
      next: (value) => { events.push(value) },
      error: (error) => resolve({ error }),
      complete: () => resolve({})
    })
  })
  const connected = new Promise<void>((resolve) => client.on('connected', () => resolve()))
  return { client, events, ended, connected, closed }
}

async function until (fn: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function managerKey (app: FastifyInstance, clientId: string): Promise<{ id: string, secret: string }> {
  const { createApiKey } = await gqlOk(app, 'mutation ($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } secret } }', { i: { name: 'sub', role: 'MANAGER', clientId } })
  return { id: createApiKey.apiKey.id, secret: createApiKey.secret }
}

t.test('connection_init without or with a bad token closes with 4403; a valid one subscribes', async (t) => {
  const app = await build(t, { background: true })
  const c = await createClient(app)
  const port = await listen(app)

  for (const [name, payload] of Object.entries({ none: undefined, bad: { authorization: 'Bearer srl_nope' }, garbage: { authorization: 'Bearer a.b.c' } })) {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
    const messages: Array<{ type: string }> = []
    socket.on('message', (data) => messages.push(JSON.parse(String(data))))
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)))
    await new Promise((resolve) => socket.once('open', resolve))
    socket.send(JSON.stringify({ type: 'connection_init', ...(payload ? { payload } : {}) }))
    t.equal(await closed, 4403, `${name}: closed with 4403 Forbidden`)
    t.same(messages, [], `${name}: no message, no ack`)
  }

  const manager = await managerKey(app, c.id)
  const { issueToken } = await gqlOk(app, 'mutation { issueToken(input: { ttlSeconds: 120 }) { token } }', {}, manager.secret)
  for (const [name, token] of Object.entries({ apiKey: ADMIN_KEY, jwt: issueToken.token })) {
    const s = await open(port, { authorization: `Bearer ${token}` }, c.id)
    await s.connected
    await new Promise((resolve) => setTimeout(resolve, 100))
    const serial = await createSerial(app, c.id)
    await gqlOk(app, 'mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id } }', { i: { id: serial.id } })
    await until(() => JSON.stringify(s.events).includes(serial.id))
    t.pass(`${name}: receives events`)
    await s.client.dispose()
  }
})

t.test('revoking an API key closes its subscriptions (and its tokens\') with 4403 on every instance', async (t) => {
  const [a, b] = await buildPair(t, { background: true })
  const c = await createClient(a)
  const [portA, portB] = [await listen(a), b === a ? undefined : await listen(b)]
  const key = await managerKey(a, c.id)
  const other = await managerKey(a, c.id)
  const { issueToken } = await gqlOk(a, 'mutation { issueToken(input: { ttlSeconds: 600 }) { token } }', {}, key.secret)

  const byKeyOnA = await open(portA, { authorization: `Bearer ${key.secret}` }, c.id)
  const byTokenOnB = await open(portB ?? portA, { authorization: `Bearer ${issueToken.token}` }, c.id)
  const unrelated = await open(portB ?? portA, { authorization: `Bearer ${other.secret}` }, c.id)
  await Promise.all([byKeyOnA.connected, byTokenOnB.connected, unrelated.connected])

  await gqlOk(a, 'mutation ($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id } }', { i: { id: key.id } })
  await until(() => byKeyOnA.closed.code !== undefined && byTokenOnB.closed.code !== undefined)
  t.equal(byKeyOnA.closed.code, 4403, 'the key\'s own subscription, instance A')
  t.equal(byTokenOnB.closed.code, 4403, `a token issued from it, instance ${portB ? 'B' : 'A'}`)

  // The other key's subscription still delivers.
  const serial = await createSerial(a, c.id)
  await gqlOk(a, 'mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id } }', { i: { id: serial.id } })
  await until(() => JSON.stringify(unrelated.events).includes(serial.id))
  t.equal(unrelated.closed.code, undefined, 'an unrelated subscription stays open')
  await unrelated.client.dispose()
})

t.test('a subscription ends with 4403 when its token expires', async (t) => {
  const app = await build(t, { background: true })
  const c = await createClient(app)
  const port = await listen(app)
  const key = await managerKey(app, c.id)
  const actor = await app.authenticate(key.secret)
  t.ok(actor)
  // Shorter than the API allows (60 s), so the test does not wait a minute.
  const { token, expiresAt } = app.issueToken(actor!, 2)
  const s = await open(port, { authorization: `Bearer ${token}` }, c.id)
  await s.connected
  await until(() => s.closed.code !== undefined)
  t.equal(s.closed.code, 4403)
  t.ok(Date.now() >= expiresAt.getTime(), 'closed once exp passed, not before')

  const late = await open(port, { authorization: `Bearer ${token}` }, c.id)
  await until(() => late.closed.code !== undefined)
  t.equal(late.closed.code, 4403, 'an expired token cannot connect')
})
