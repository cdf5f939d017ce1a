// graphql-transport-ws on /graphql: the protocol's close codes with raw frames, and queries,
// mutations and errors over the socket with the official graphql-ws client.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { createClient as wsClient, type ExecutionResult } from 'graphql-ws'
import WebSocket from 'ws'
import { ADMIN_KEY, build, createClient, createSerial } from '../helper.ts'

async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
}

interface Raw { socket: WebSocket, messages: Array<{ type: string, id?: string, payload?: any }>, closed: Promise<{ code: number, reason: string }>, next: (type: string) => Promise<unknown> }

async function raw (url: string): Promise<Raw> {
  const socket = new WebSocket(url, 'graphql-transport-ws')
  const messages: Raw['messages'] = []
  const waiters: Array<{ type: string, resolve: (m: unknown) => void }> = []
  socket.on('message', (data) => {
    const message = JSON.parse(String(data))
    messages.push(message)
    for (const w of waiters.filter((w) => w.type === message.type)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(message) }
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })))
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  const next = (type: string) => new Promise<unknown>((resolve) => {
    const seen = messages.find((m) => m.type === type)
    if (seen) resolve(seen); else waiters.push({ type, resolve })
  })
  return { socket, messages, closed, next }
}

const send = (r: Raw, message: unknown) => r.socket.send(JSON.stringify(message))
const INIT = { type: 'connection_init', payload: { authorization: `Bearer ${ADMIN_KEY}` } }
const SUB = { query: 'subscription { serialChanged { type } }' }

t.test('close codes of graphql-transport-ws, with raw frames', async (t) => {
  const app = await build(t, { background: false })
  const url = await listen(app)

  const early = await raw(url)
  send(early, { id: '1', type: 'subscribe', payload: SUB })
  t.equal((await early.closed).code, 4401, 'subscribe before ack: 4401 Unauthorized')

  const twice = await raw(url)
  send(twice, INIT)
  await twice.next('connection_ack')
  send(twice, INIT)
  t.equal((await twice.closed).code, 4429, 'second connection_init: 4429')

  const unknown = await raw(url)
  send(unknown, INIT)
  await unknown.next('connection_ack')
  send(unknown, { type: 'bogus' })
  t.equal((await unknown.closed).code, 4400, 'unknown message type: 4400')

  const garbage = await raw(url)
  garbage.socket.send('{ not json')
  t.equal((await garbage.closed).code, 4400, 'a frame that is not JSON: 4400')

  const duplicate = await raw(url)
  send(duplicate, INIT)
  await duplicate.next('connection_ack')
  send(duplicate, { id: 'same', type: 'subscribe', payload: SUB })
  send(duplicate, { id: 'same', type: 'subscribe', payload: SUB })
  t.equal((await duplicate.closed).code, 4409, 'duplicate operation id: 4409')

  for (const [name, payload] of Object.entries({ missing: undefined, bad: { authorization: 'Bearer srl_nope' }, malformed: { authorization: 'Bearer a.b.c' } })) {
    const refused = await raw(url)
    send(refused, { type: 'connection_init', ...(payload ? { payload } : {}) })
    t.equal((await refused.closed).code, 4403, `${name} credential: 4403 Forbidden`)
    t.notOk(refused.messages.some((m) => m.type === 'connection_ack'), `${name}: no ack`)
  }

  // A socket offering no graphql-transport-ws subprotocol is refused by the protocol.
  const noProtocol = new WebSocket(url)
  const code = await new Promise<number>((resolve) => noProtocol.once('close', (c) => resolve(c)))
  t.equal(code, 4406, 'no subprotocol: 4406')
})

t.test('queries, mutations and errors over the socket with the graphql-ws client', async (t) => {
  const app = await build(t, { background: false })
  const url = await listen(app)
  const c = await createClient(app)
  const serial = await createSerial(app, c.id)
  const client = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0, lazy: true })
  t.teardown(() => client.dispose())
  const once = (query: string, variables: Record<string, unknown> = {}) => new Promise<ExecutionResult<any> | { thrown: unknown }>((resolve) => {
    let result: ExecutionResult<any> | undefined
    client.subscribe({ query, variables }, { next: (value) => { result = value as ExecutionResult<any> }, error: (error) => resolve({ thrown: error }), complete: () => resolve(result!) })
  })

  const me = await once('{ me { role } }') as ExecutionResult<any>
  t.same(me.data, { me: { role: 'ADMIN' } }, 'query')

  const suspended = await once('mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id status } }', { i: { id: serial.id } }) as ExecutionResult<any>
  t.same(suspended.data?.suspendSerial, { id: serial.id, status: 'SUSPENDED' }, 'mutation')

  const notFound = await once('{ client(id: "cli_nope") { id } }') as ExecutionResult<any>
  t.equal((notFound.errors?.[0] as any)?.extensions?.code, 'NOT_FOUND', 'execution errors carry the contract code')

  const invalid = await once('{ nope }') as { thrown: Array<{ message: string, extensions?: { code?: string } }> }
  t.ok(Array.isArray(invalid.thrown), 'validation errors arrive as an error message')
  t.equal(invalid.thrown[0]?.extensions?.code, 'VALIDATION_ERROR')

  const deep = await once(`{ ${'me { '.repeat(5000)}id${' }'.repeat(5000)} }`) as { thrown: Array<{ extensions?: { code?: string } }> }
  t.equal(deep.thrown[0]?.extensions?.code, 'VALIDATION_ERROR', 'nesting bound applies over the socket')

  const bulk = await once(`mutation { ${['a', 'b', 'c'].map((a) => `${a}: createSerials(input: { clientId: "${c.id}", count: 10000 }) { count }`).join(' ')} }`) as ExecutionResult<any>
  t.equal((bulk.errors?.[0] as any)?.extensions?.code, 'VALIDATION_ERROR', 'work bound applies over the socket')
})

t.test('a finished subscription leaves no listener on the event bus (complete or socket close)', async (t) => {
  const app = await build(t, { background: false })
  const url = await listen(app)
  const c = await createClient(app)
  // mqemitter-redis prefixes topics per deployment (here: per test run).
  const topic = `${app.deps.config.redis ? `${app.deps.config.redis.prefix}/` : ''}event/serial.suspended/${c.id}`
  const matcher = (app.deps.bus.emitter as unknown as { _matcher: { match (topic: string): unknown[] } })._matcher
  const listeners = () => matcher.match(topic).length
  const baseline = listeners()
  const until = async (fn: () => boolean) => { for (let i = 0; i < 400 && !fn(); i++) await new Promise((resolve) => setTimeout(resolve, 25)) }

  const client = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
  t.teardown(() => client.dispose())
  const query = 'subscription ($c: ID) { serialChanged(clientId: $c) { type } }'
  const stop = client.subscribe({ query, variables: { c: c.id } }, { next: () => {}, error: () => {}, complete: () => {} })
  await until(() => listeners() > baseline)
  t.ok(listeners() > baseline, 'subscribed on the bus')
  stop() // sends `complete` while the stream waits for its next event
  await until(() => listeners() === baseline)
  t.equal(listeners(), baseline, 'complete removes the listener')

  client.subscribe({ query, variables: { c: c.id } }, { next: () => {}, error: () => {}, complete: () => {} })
  await until(() => listeners() > baseline)
  await client.dispose()
  await until(() => listeners() === baseline)
  t.equal(listeners(), baseline, 'closing the socket removes the listener')
})
