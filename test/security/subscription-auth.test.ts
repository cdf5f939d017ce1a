// Subscriptions authenticate in connection_init; without a valid credential the socket is closed.
import t from 'tap'
import { createClient as wsClient } from 'graphql-ws'
import WebSocket from 'ws'
import { ADMIN_KEY, build, createApiKey, createClient, createSerial, gqlOk } from '../helper.ts'

const SUB = 'subscription ($c: ID) { serialChanged(clientId: $c) { type serial { id } } }'

async function open (port: number, connectionParams: Record<string, unknown>, clientId: string) {
  const client = wsClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: true })
  const events: unknown[] = []
  const ended = new Promise<{ error?: unknown }>((resolve) => {
    client.subscribe({ query: SUB, variables: { c: clientId } }, {
      next: (value) => { events.push(value) },
      error: (error) => resolve({ error }),
      complete: () => resolve({})
    })
  })
  const connected = new Promise<void>((resolve) => client.on('connected', () => resolve()))
  return { client, events, ended, connected }
}

t.test('connection_init without or with a bad token is closed; a valid one subscribes', async (t) => {
  const app = await build(t, { background: true })
  const c = await createClient(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  // Raw protocol: mercurius answers a refused connection_init with connection_error, then closes.
  for (const [name, payload] of Object.entries({ none: undefined, bad: { authorization: 'Bearer srl_nope' }, garbage: { authorization: 'Bearer a.b.c' } })) {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
    const messages: Array<{ type: string }> = []
    socket.on('message', (data) => messages.push(JSON.parse(String(data))))
    await new Promise((resolve) => socket.once('open', resolve))
    socket.send(JSON.stringify({ type: 'connection_init', ...(payload ? { payload } : {}) }))
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SUB, variables: { c: c.id } } }))
    await new Promise((resolve) => socket.once('close', resolve))
    t.notOk(messages.some((m) => m.type === 'connection_ack'), `${name}: no connection_ack`)
    t.notOk(messages.some((m) => m.type === 'next'), `${name}: no data`)
    t.equal(socket.readyState, WebSocket.CLOSED, `${name}: closed by the server`)
  }

  const manager = await createApiKey(app, 'MANAGER', c.id)
  const { issueToken } = await gqlOk(app, 'mutation { issueToken(input: { ttlSeconds: 120 }) { token } }', {}, manager)
  for (const [name, token] of Object.entries({ apiKey: ADMIN_KEY, jwt: issueToken.token })) {
    const s = await open(port, { authorization: `Bearer ${token}` }, c.id)
    await s.connected
    // The subscription is registered once the socket is up; a change then arrives.
    await new Promise((resolve) => setTimeout(resolve, 100))
    const serial = await createSerial(app, c.id)
    await gqlOk(app, 'mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id } }', { i: { id: serial.id } })
    // Events of the previous round's serial (same client) may still arrive first.
    const mentions = () => JSON.stringify(s.events).includes(serial.id)
    for (let i = 0; i < 100 && !mentions(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    t.ok(s.events.length > 0, `${name}: receives events`)
    t.match(JSON.stringify(s.events), serial.id)
    await s.client.dispose()
  }
})
