// README "GraphQL over HTTP and WebSocket", clients on Node 20: with the global WebSocket set from
// `ws` (and no webSocketImpl), graphql-ws reaches the service and reports a refused credential as
// an error the caller receives, not a ReferenceError.
import { createClient as wsClient } from 'graphql-ws'
import t from 'tap'
import WebSocket from 'ws'
import { ADMIN_KEY, build } from '../helper.ts'

t.test('the global WebSocket from ws, as the README sets it', async (t) => {
  const had = (globalThis as { WebSocket?: unknown }).WebSocket
  ;(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket
  t.teardown(() => { (globalThis as { WebSocket?: unknown }).WebSocket = had })
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
  const query = 'subscription WatchSerials { serialChanged { type } }'

  const refused = wsClient({ url, connectionParams: { authorization: 'Bearer srl_not_a_key' }, retryAttempts: 0 })
  const error = await new Promise<unknown>((resolve) => refused.subscribe({ query }, { next () {}, error: resolve, complete: () => resolve(undefined) }))
  t.equal((error as { code?: number }).code, 4403, 'the refusal arrives as the close event (4403)')
  await refused.dispose()

  const accepted = wsClient({ url, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
  const connected = new Promise<void>((resolve) => accepted.on('connected', () => resolve()))
  const stop = accepted.subscribe({ query }, { next () {}, error () {}, complete () {} })
  await connected
  t.pass('connected with a valid key')
  stop()
  await accepted.dispose()
})
