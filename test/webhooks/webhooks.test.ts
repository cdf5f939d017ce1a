import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { backoffMs } from '../../src/domain/webhooks/webhook-service.ts'
import { build, createApiKey, createClient, createSerial, gql, gqlOk } from '../helper.ts'

interface Received { headers: IncomingMessage['headers'], body: string }

async function receiver (t: { teardown (fn: () => unknown): void }, status: () => number) {
  const received: Received[] = []
  const server: Server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => { received.push({ headers: req.headers, body }); res.statusCode = status(); res.end('ok') })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received }
}

async function until<T> (fn: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** How a receiver checks a delivery (README "Webhooks"). */
function verify (secret: string, headers: IncomingMessage['headers'], body: string): boolean {
  const timestamp = Number(headers['x-serials-timestamp'])
  if (!Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > 300) return false
  const expected = Buffer.from(`v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`)
  const given = Buffer.from(String(headers['x-serials-signature']))
  return expected.length === given.length && timingSafeEqual(expected, given)
}

const CREATE = 'mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { id clientId url events enabled } } }'

t.test('signed deliveries from the outbox, filtered by client and event', async (t) => {
  const app = await build(t, { env: { WEBHOOK_ALLOW_PRIVATE: 'true' } })
  const hook = await receiver(t, () => 200)
  const client = await createClient(app)
  const other = await createClient(app)
  const created = (await gqlOk(app, CREATE, { input: { clientId: client.id, url: hook.url, events: ['serial.revoked'] } })).createWebhook
  t.match(created, { secret: /^whsec_/, webhook: { clientId: client.id, url: hook.url, events: ['serial.revoked'], enabled: true } })

  const serial = await createSerial(app, client.id)
  const otherSerial = await createSerial(app, other.id)
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { input: { id: otherSerial.id, reason: 'x' } })
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id } }', { input: { id: serial.id, reason: 'refund' } })

  const delivery = await until(() => hook.received[0])
  const body = JSON.parse(delivery.body)
  t.match(body, { type: 'serial.revoked', data: { serialId: serial.id, clientId: client.id, reason: 'refund' } })
  t.equal(delivery.headers['x-serials-event'], 'serial.revoked')
  t.ok(verify(created.secret, delivery.headers, delivery.body), 'the documented check accepts it')
  t.notOk(verify(created.secret, delivery.headers, delivery.body.replace('refund', 'refunX')), 'a changed body fails')
  t.notOk(verify('whsec_wrong', delivery.headers, delivery.body), 'another secret fails')
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(hook.received.length, 1, 'no event of another client or type was sent')

  const deliveries = await until(async () => {
    const res = await gqlOk(app, 'query ($id: ID!) { webhookDeliveries(webhookId: $id, first: 10) { edges { node { status attempts lastStatusCode eventType } } } }', { id: created.webhook.id })
    const node = res.webhookDeliveries.edges[0]?.node
    return node?.status === 'SUCCEEDED' ? node : undefined
  })
  t.match(deliveries, { status: 'SUCCEEDED', attempts: 1, lastStatusCode: 200, eventType: 'serial.revoked' })

  const deleted = await gqlOk(app, 'mutation ($input: DeleteWebhookInput!) { deleteWebhook(input: $input) { id enabled } }', { input: { id: created.webhook.id } })
  t.equal(deleted.deleteWebhook.enabled, false)
  t.same((await gqlOk(app, '{ webhooks { id } }')).webhooks.filter((w: { id: string }) => w.id === created.webhook.id), [])
})

t.test('failures are recorded and retried with backoff; re-enable after disable', async (t) => {
  const app = await build(t, { env: { WEBHOOK_ALLOW_PRIVATE: 'true' } })
  const hook = await receiver(t, () => 503)
  const client = await createClient(app)
  const created = (await gqlOk(app, CREATE, { input: { clientId: client.id, url: hook.url } })).createWebhook
  await createSerial(app, client.id)
  const node = await until(async () => {
    const res = await gqlOk(app, 'query ($id: ID!) { webhookDeliveries(webhookId: $id, first: 10) { edges { node { status attempts lastStatusCode lastError nextAttemptAt } } } }', { id: created.webhook.id })
    const n = res.webhookDeliveries.edges[0]?.node
    return n?.attempts >= 1 ? n : undefined
  })
  t.match(node, { status: 'PENDING', attempts: 1, lastStatusCode: 503, lastError: 'HTTP 503' })
  t.ok(Date.parse(node.nextAttemptAt) > Date.now() + 3000, 'next attempt is backed off')
  t.ok(backoffMs(1, 0) === 5000 && backoffMs(1, 1) === 15000 && backoffMs(30, 0.5) === 3600_000, 'exponential from 10 s with jitter, capped at 1 h')

  await app.deps.database.db.execute((await import('drizzle-orm')).sql`update webhooks set enabled = false, disabled_at = now() where id = ${created.webhook.id}`)
  const enabled = await gqlOk(app, 'mutation ($input: EnableWebhookInput!) { enableWebhook(input: $input) { enabled consecutiveFailures disabledAt } }', { input: { id: created.webhook.id } })
  t.same(enabled.enableWebhook, { enabled: true, consecutiveFailures: 0, disabledAt: null })
})

t.test('SSRF guard and tenant rules', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const other = await createClient(app)
  for (const url of ['http://127.0.0.1:9/x', 'http://localhost/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest', 'http://[::1]/x', 'ftp://example.com/x', 'not a url']) {
    const res = await gql(app, CREATE, { input: { clientId: client.id, url } })
    t.match(res.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'url' }] }, url)
  }
  const manager = await createApiKey(app, 'MANAGER', client.id)
  const foreign = await gql(app, CREATE, { input: { clientId: other.id, url: 'http://127.0.0.1/x' } }, manager)
  t.match(foreign.errors?.[0]?.extensions, { code: 'NOT_FOUND' })
  const auditor = await createApiKey(app, 'AUDITOR')
  const readOnly = await gql(app, CREATE, { input: { clientId: client.id, url: 'http://127.0.0.1/x' } }, auditor)
  t.match(readOnly.errors?.[0]?.extensions, { code: 'FORBIDDEN' })
})
