// DNS rebinding: a webhook host that answers a public address when the guard looks it up and
// 127.0.0.1 when the delivery connects must never reach 127.0.0.1. This process's DNS is replaced
// for one name (both node:dns APIs, as a rebinding server with a zero TTL would answer), and a
// connection to that name that would leave the machine is refused here: nothing leaves it.
import dns from 'node:dns'
import dnsPromises from 'node:dns/promises'
import { createServer, type IncomingMessage } from 'node:http'
import { syncBuiltinESMExports } from 'node:module'
import net, { type AddressInfo, type LookupFunction } from 'node:net'
import tls from 'node:tls'
import t from 'tap'
import { postWebhook } from '../../src/domain/webhooks/webhook-send.ts'
import { pinnedLookup } from '../../src/domain/webhooks/webhook-url.ts'
import { build, createClient, createSerial, gqlOk } from '../helper.ts'

const NAME = 'rebind.serials.test'
const PUBLIC = '93.184.216.34'

/** What the name answers to its n-th query (1-based); every query is counted. */
let answer: (n: number) => string = () => '127.0.0.1'
let queries = 0
/** Addresses connections to NAME were about to be made to. */
const dialled: string[] = []

type Callback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void
const realLookup = dns.lookup
const realPromisesLookup = dnsPromises.lookup
const realConnect = net.Socket.prototype.connect

function fakeLookup (this: unknown, host: string, options: unknown, callback?: unknown): void {
  if (host !== NAME) return (realLookup as (...args: unknown[]) => void).apply(dns, [host, options, callback].filter((a) => a !== undefined))
  const cb = (typeof options === 'function' ? options : callback) as Callback
  const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all
  const address = answer(++queries)
  process.nextTick(() => all ? cb(null, [{ address, family: 4 }]) : cb(null, address, 4))
}
async function fakePromisesLookup (host: string, options?: dns.LookupOptions): Promise<unknown> {
  if (host !== NAME) return realPromisesLookup(host, options ?? {})
  const address = answer(++queries)
  return options?.all ? [{ address, family: 4 }] : { address, family: 4 }
}
/** Connections to NAME: record where they go; one that would leave the machine is refused. */
function guardedConnect (this: net.Socket, ...args: unknown[]): net.Socket {
  const options = (Array.isArray(args[0]) ? args[0][0] : args[0]) as { host?: string, lookup?: LookupFunction } | undefined
  if (options && typeof options === 'object' && options.host === NAME) {
    const inner: LookupFunction = options.lookup ?? (dns.lookup as unknown as LookupFunction)
    options.lookup = (host, opts, cb) => inner(host, opts, (err, address, family) => {
      if (err) { cb(err, address, family); return }
      const list = Array.isArray(address) ? address.map((a) => a.address) : [address]
      dialled.push(...list)
      if (list.some((a) => a !== '127.0.0.1')) { cb(Object.assign(new Error(`connect ECONNREFUSED ${list.join(',')} (kept on this machine by the test)`), { code: 'ECONNREFUSED' }), '', 0); return }
      cb(null, address, family)
    })
  }
  return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args)
}

(dns as { lookup: unknown }).lookup = fakeLookup
;(dnsPromises as { lookup: unknown }).lookup = fakePromisesLookup
;(net.Socket.prototype as { connect: unknown }).connect = guardedConnect
syncBuiltinESMExports() // `import { lookup } from 'node:dns/promises'` elsewhere sees the fake too
t.teardown(() => {
  (dns as { lookup: unknown }).lookup = realLookup
  ;(dnsPromises as { lookup: unknown }).lookup = realPromisesLookup
  ;(net.Socket.prototype as { connect: unknown }).connect = realConnect
  syncBuiltinESMExports()
})

async function receiver (t: { teardown (fn: () => unknown): void }) {
  const received: IncomingMessage['headers'][] = []
  const server = createServer((req, res) => { received.push(req.headers); req.resume(); res.end('ok') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return { port: (server.address() as AddressInfo).port, received }
}

async function firstAttempt (app: Parameters<typeof gqlOk>[0], webhookId: string) {
  const end = Date.now() + 20_000
  for (;;) {
    const res = await gqlOk(app, 'query ($id: ID!) { webhookDeliveries(webhookId: $id, first: 1) { edges { node { attempts lastStatusCode lastError } } } }', { id: webhookId })
    const node = res.webhookDeliveries.edges[0]?.node as { attempts: number, lastStatusCode: number | null, lastError: string | null } | undefined
    if (node && node.attempts >= 1) return node
    if (Date.now() > end) throw new Error('no delivery attempt in time')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const CREATE = 'mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id url } } }'

t.test('a name that rebinds to 127.0.0.1 after the check: the delivery goes to the checked address only', async (t) => {
  const hook = await receiver(t)
  const app = await build(t) // WEBHOOK_ALLOW_PRIVATE off: the guard is on
  queries = 0
  dialled.length = 0
  // Public to the creation's check and to the delivery's check, 127.0.0.1 to any later query.
  answer = (n) => n <= 2 ? PUBLIC : '127.0.0.1'
  const client = await createClient(app)
  const created = (await gqlOk(app, CREATE, { input: { clientId: client.id, url: `http://${NAME}:${hook.port}/hook`, events: ['serial.created'] } })).createWebhook
  t.equal(queries, 1, 'creation checked the name once')
  await createSerial(app, client.id)

  const attempt = await firstAttempt(app, created.webhook.id)
  t.equal(hook.received.length, 0, 'the delivery never reached 127.0.0.1')
  t.same(dialled, [PUBLIC], 'it connected to the address the check approved, and to nothing else')
  t.equal(queries, 2, 'the delivery looked the name up once, for its check')
  t.match(attempt, { attempts: 1, lastStatusCode: null, lastError: 'connection failed' })
})

t.test('a pinned delivery keeps the name for Host; the address is looked up once per attempt', async (t) => {
  const hook = await receiver(t)
  const app = await build(t, { env: { WEBHOOK_ALLOW_PRIVATE: 'true' } })
  queries = 0
  dialled.length = 0
  answer = () => '127.0.0.1'
  const client = await createClient(app)
  const created = (await gqlOk(app, CREATE, { input: { clientId: client.id, url: `http://${NAME}:${hook.port}/hook`, events: ['serial.created'] } })).createWebhook
  await createSerial(app, client.id)
  const attempt = await firstAttempt(app, created.webhook.id)
  t.match(attempt, { attempts: 1, lastStatusCode: 200 })
  t.equal(hook.received[0]?.host, `${NAME}:${hook.port}`, 'Host is the URL\'s name, not the address')
  t.equal(queries, 1, 'one look-up for the attempt (none at creation: private targets are allowed)')
  t.same(dialled, ['127.0.0.1'])
})

t.test('TLS: the SNI name is the URL\'s host while the connection goes to the pinned address', async (t) => {
  const servernames: string[] = []
  // No certificate: the handshake stops after the ClientHello, which is all this needs to see.
  const server = tls.createServer({ SNICallback: (name, cb) => { servernames.push(name); cb(new Error('no certificate here'), undefined) } })
  server.on('tlsClientError', () => undefined)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const port = (server.address() as AddressInfo).port
  queries = 0
  await t.rejects(postWebhook({ url: new URL(`https://hooks.unresolvable.test:${port}/x`), addresses: ['127.0.0.1'] }, {}, '{}', 5000))
  t.same(servernames, ['hooks.unresolvable.test'])
  t.equal(queries, 0, 'no DNS query: the checked address was used')
})

t.test('pinnedLookup answers only the checked addresses, by family', async (t) => {
  const lookup = pinnedLookup(['93.184.216.34', '2606:4700::6810:85e5'])
  const ask = (options: dns.LookupOptions) => new Promise<{ err: NodeJS.ErrnoException | null, address: unknown, family?: number }>((resolve) =>
    lookup('anything.example', options, (err, address, family) => resolve({ err, address, family })))
  t.same(await ask({ all: true }), { err: null, address: [{ address: '93.184.216.34', family: 4 }, { address: '2606:4700::6810:85e5', family: 6 }], family: undefined })
  t.match(await ask({}), { err: null, address: '93.184.216.34', family: 4 })
  t.match(await ask({ family: 6 }), { err: null, address: '2606:4700::6810:85e5', family: 6 })
  t.match(await ask({ family: 4, all: true }), { address: [{ address: '93.184.216.34', family: 4 }] })
  t.match((await ask({ family: 6 as const, all: true })).address, [{ family: 6 }])
  const v4only = pinnedLookup(['93.184.216.34'])
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => v4only('x', { family: 6 }, (e) => resolve(e)))
  t.match(err, { code: 'ENOTFOUND' })
})
