// Limits of the GraphQL WebSocket (ws-server.ts): subscriptions per socket hold under a burst of
// frames, subscriptions per credential hold across sockets and instances, an oversized frame is
// refused by the WebSocket layer (1009) before it is parsed, and public calls on a socket spend
// VALIDATE_RATE_LIMIT exactly as HTTP requests do.
import { once } from 'node:events'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { MAX_SUBSCRIPTIONS_PER_SOCKET } from '../../src/http/graphql/ws-server.ts'
import { BODY_LIMIT } from '../../src/main/app.ts'
import { loadConfig } from '../../src/config/config.ts'
import { ADMIN_KEY, build, buildPair, createApiKey, createClient, createSerial, gqlOk, TEST_DATA_DIR, until } from '../helper.ts'

/** The largest frame the socket accepts, in bytes: the HTTP body limit (1 MiB). */
const MAX_FRAME = 1024 * 1024
const SUB = 'subscription { serialChanged { type serial { id } } }'

interface Message { type: string, id?: string, payload?: any }

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

/** A raw graphql-transport-ws socket, acknowledged; every message it receives is kept. */
async function connect (t: Test, port: number, key: string) {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
  t.teardown(() => socket.terminate())
  const messages: Message[] = []
  socket.on('message', (raw) => messages.push(JSON.parse(String(raw)) as Message))
  const closed = new Promise<{ code: number, reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })))
  socket.on('error', () => {})
  await once(socket, 'open')
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } }))
  await until(() => messages.some((m) => m.type === 'connection_ack'), 'connection_ack')
  const errorsFor = (prefix: string) => messages.filter((m) => m.type === 'error' && m.id?.startsWith(prefix))
  return { socket, messages, closed, errorsFor }
}

/** Waits until no message arrived for `quietMs` (or `maxMs` passed). */
async function settle (messages: Message[], quietMs = 600, maxMs = 15_000) {
  const end = Date.now() + maxMs
  let seen = -1
  while (seen !== messages.length && Date.now() < end) {
    seen = messages.length
    await new Promise((resolve) => setTimeout(resolve, quietMs))
  }
}

t.test(`a burst of 300 subscribe frames on one socket gets at most ${MAX_SUBSCRIPTIONS_PER_SOCKET} live subscriptions`, async (t) => {
  const app = await build(t, { background: true })
  const client = await createClient(app)
  // A MANAGER's operations are charged to its client's quota first: an await before the cap.
  const ws = await connect(t, await listen(app), await createApiKey(app, 'MANAGER', client.id))
  for (let i = 0; i < 300; i++) ws.socket.send(JSON.stringify({ type: 'subscribe', id: `s${i}`, payload: { query: SUB } }))
  // The refusals come first (a loaded machine may take a while), then nothing more.
  await until(() => ws.errorsFor('s').length >= 300 - MAX_SUBSCRIPTIONS_PER_SOCKET, 'the refusals', 15_000).catch(() => {})
  await settle(ws.messages)
  const refused = ws.errorsFor('s')
  t.equal(refused.length, 300 - MAX_SUBSCRIPTIONS_PER_SOCKET, `${refused.length} of 300 refused`)
  t.ok(refused.every((m) => m.payload?.[0]?.extensions?.code === 'RATE_LIMITED'), 'each RATE_LIMITED')
  // The live ones are counted by what they receive: one event reaches each of them.
  await createSerial(app, client.id)
  await until(() => new Set(ws.messages.filter((m) => m.type === 'next').map((m) => m.id)).size >= MAX_SUBSCRIPTIONS_PER_SOCKET, 'events', 10_000).catch(() => {})
  await settle(ws.messages)
  const live = new Set(ws.messages.filter((m) => m.type === 'next').map((m) => m.id))
  t.equal(live.size, MAX_SUBSCRIPTIONS_PER_SOCKET, `${live.size} subscriptions received the event`)
  // A completed subscription frees its place.
  const first = [...live][0]!
  ws.socket.send(JSON.stringify({ type: 'complete', id: first }))
  await new Promise((resolve) => setTimeout(resolve, 100))
  ws.socket.send(JSON.stringify({ type: 'subscribe', id: 'again', payload: { query: SUB } }))
  await settle(ws.messages)
  t.equal(ws.errorsFor('again').length, 0, 'a new subscription fits after one completed')
})

t.test('SUBSCRIPTIONS_PER_CREDENTIAL: a default of 500, and an invalid value stops start-up', async (t) => {
  const base = { NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, DATABASE_URL: 'memory://' }
  t.equal((await loadConfig(base)).subscriptionsPerCredential, 500)
  t.equal((await loadConfig({ ...base, SUBSCRIPTIONS_PER_CREDENTIAL: '7' })).subscriptionsPerCredential, 7)
  await t.rejects(loadConfig({ ...base, SUBSCRIPTIONS_PER_CREDENTIAL: '0' }), /SUBSCRIPTIONS_PER_CREDENTIAL/)
})

t.test('live subscriptions per credential are capped across sockets and instances', async (t) => {
  const cap = 6
  const [a, b] = await buildPair(t, { background: false, env: { SUBSCRIPTIONS_PER_CREDENTIAL: String(cap) } })
  const client = await createClient(a)
  const key = await createApiKey(a, 'MANAGER', client.id)
  const portA = await listen(a)
  const portB = b === a ? portA : await listen(b)
  const one = await connect(t, portA, key)
  const two = await connect(t, portB, key)
  // A token issued from the key shares the key's budget.
  const token = (await gqlOk(a, 'mutation { issueToken(input: { ttlSeconds: 600 }) { token } }', {}, key)).issueToken.token as string
  const three = await connect(t, portB, token)
  for (let i = 0; i < 4; i++) one.socket.send(JSON.stringify({ type: 'subscribe', id: `a${i}`, payload: { query: SUB } }))
  await settle(one.messages)
  for (let i = 0; i < 4; i++) two.socket.send(JSON.stringify({ type: 'subscribe', id: `b${i}`, payload: { query: SUB } }))
  for (let i = 0; i < 4; i++) three.socket.send(JSON.stringify({ type: 'subscribe', id: `c${i}`, payload: { query: SUB } }))
  await until(() => two.errorsFor('b').length + three.errorsFor('c').length >= 12 - cap, 'the refusals', 15_000).catch(() => {})
  await settle(two.messages)
  await settle(three.messages)
  const refused = [...one.errorsFor('a'), ...two.errorsFor('b'), ...three.errorsFor('c')]
  t.equal(one.errorsFor('a').length, 0, 'the first socket got its 4')
  t.equal(refused.length, 12 - cap, `${12 - refused.length} live of 12 asked for over three sockets${b === a ? '' : ' on two instances'}`)
  t.ok(refused.every((m) => m.payload?.[0]?.extensions?.code === 'RATE_LIMITED' && /per credential/.test(m.payload?.[0]?.message)), 'RATE_LIMITED, naming the cap')

  // Another credential is not affected.
  const other = await connect(t, portB, ADMIN_KEY)
  other.socket.send(JSON.stringify({ type: 'subscribe', id: 'x', payload: { query: SUB } }))
  await settle(other.messages)
  t.equal(other.errorsFor('x').length, 0, 'another credential subscribes')

  // A completed subscription and a closed socket give their places back, on every instance.
  one.socket.send(JSON.stringify({ type: 'complete', id: 'a0' }))
  await new Promise((resolve) => setTimeout(resolve, 200))
  two.socket.send(JSON.stringify({ type: 'subscribe', id: 'r', payload: { query: SUB } }))
  await settle(two.messages)
  t.equal(two.errorsFor('r').length, 0, 'a completed subscription\'s place is free on the other instance')
  one.socket.close()
  await one.closed
  await new Promise((resolve) => setTimeout(resolve, 200))
  for (let i = 0; i < 3; i++) three.socket.send(JSON.stringify({ type: 'subscribe', id: `d${i}`, payload: { query: SUB } }))
  await settle(three.messages)
  t.equal(three.errorsFor('d').length, 0, 'the closed socket\'s places are free again')
})

t.test(`a frame over ${MAX_FRAME} bytes is refused by the WebSocket layer (1009) and never parsed`, async (t) => {
  t.equal(MAX_FRAME, BODY_LIMIT, 'the same bound as an HTTP body')
  const app = await build(t, { background: false })
  const port = await listen(app)
  const executed: string[] = []
  app.graphql.addHook('preExecution', async (_schema, _document, context) => {
    executed.push(String((context as { operationName?: string }).operationName))
  })
  const big = await connect(t, port, ADMIN_KEY)
  const pad = 'x'.repeat(20 * 1024 * 1024)
  big.socket.send(JSON.stringify({ type: 'subscribe', id: 'big', operationName: 'Big', payload: { query: 'query Big { publicKey { keyId } }', operationName: 'Big', variables: { pad } } }))
  const closed = await Promise.race([big.closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))])
  t.equal(closed?.code, 1009, `closed with 1009 Message Too Big (${JSON.stringify(closed)})`)
  t.same(big.messages.filter((m) => m.id === 'big'), [], 'no answer to the frame')
  t.notOk(executed.includes('Big'), 'the operation did not run')

  // A frame under the bound is served as before, on a new socket.
  const fine = await connect(t, port, ADMIN_KEY)
  fine.socket.send(JSON.stringify({ type: 'subscribe', id: 'ok', payload: { query: 'query Fine { publicKey { keyId } }', operationName: 'Fine', variables: { pad: 'x'.repeat(MAX_FRAME - 4096) } } }))
  await until(() => fine.messages.some((m) => m.id === 'ok' && m.type === 'complete'), 'the answer')
  t.match(fine.messages.find((m) => m.id === 'ok' && m.type === 'next')?.payload, { data: { publicKey: { keyId: String } } })
})

t.test('330 public calls on one socket spend VALIDATE_RATE_LIMIT as HTTP does: 300 pass, 30 refused', async (t) => {
  const app = await build(t, { background: false, env: { VALIDATE_RATE_LIMIT: '300' } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const query = 'mutation ($i: ValidateSerialInput!) { validateSerial(input: $i) { code } }'
  const variables = { i: { serialNumber: serial.serialNumber, deviceId: 'burst' } }

  // HTTP from another address, for the reference figures.
  const http = await Promise.all(Array.from({ length: 330 }, () => app.inject({ method: 'POST', url: '/graphql', remoteAddress: '10.3.3.0', payload: { query, variables } })))
  const httpCodes = http.map((r) => r.json().data?.validateSerial?.code ?? r.json().errors?.[0]?.extensions?.code)
  const httpFigures = { VALID: httpCodes.filter((c) => c === 'VALID').length, RATE_LIMITED: httpCodes.filter((c) => c === 'RATE_LIMITED').length }
  t.same(httpFigures, { VALID: 300, RATE_LIMITED: 30 }, `HTTP: ${JSON.stringify(httpFigures)}`)

  const ws = await connect(t, await listen(app), ADMIN_KEY)
  for (let i = 0; i < 330; i++) ws.socket.send(JSON.stringify({ type: 'subscribe', id: `v${i}`, payload: { query, variables } }))
  await until(() => ws.messages.filter((m) => m.type === 'complete' || m.type === 'error').length >= 330, '330 answers', 30_000)
  const codes = ws.messages.filter((m) => m.type === 'next' || m.type === 'error')
    .map((m) => m.type === 'next' ? (m.payload.data?.validateSerial?.code ?? m.payload.errors?.[0]?.extensions?.code) : m.payload?.[0]?.extensions?.code)
  const figures = { VALID: codes.filter((c) => c === 'VALID').length, RATE_LIMITED: codes.filter((c) => c === 'RATE_LIMITED').length }
  t.same(figures, { VALID: 300, RATE_LIMITED: 30 }, `WebSocket, as HTTP: ${JSON.stringify(figures)}`)
  t.equal(ws.socket.readyState, ws.socket.OPEN, 'the socket stays open')
})

t.test('a socket lost without a close frame gives its places back', async (t) => {
  const a = await build(t, { background: false, env: { SUBSCRIPTIONS_PER_CREDENTIAL: '2' } })
  const port = await listen(a)
  const ws = await connect(t, port, ADMIN_KEY)
  for (let i = 0; i < 2; i++) ws.socket.send(JSON.stringify({ type: 'subscribe', id: `k${i}`, payload: { query: SUB } }))
  await settle(ws.messages)
  // The connection drops without a close frame: its places are given back all the same.
  ws.socket.terminate()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const again = await connect(t, port, ADMIN_KEY)
  for (let i = 0; i < 2; i++) again.socket.send(JSON.stringify({ type: 'subscribe', id: `n${i}`, payload: { query: SUB } }))
  await settle(again.messages)
  t.equal(again.errorsFor('n').length, 0, 'both fit again after the socket was lost')
})
