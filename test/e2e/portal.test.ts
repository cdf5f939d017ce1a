// The customer portal in real Chromium against a real service, with every request that leaves
// the service blocked: look a serial up by number, release a device (the seat is freed for
// another machine), download an offline certificate; no console error, no serious axe finding,
// and the number is never written to the page's storage.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { artifacts, CHROMIUM_ARGS, ensureWebBuild, findChromium, root, seriousAxeViolations } from './browser.ts'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import webRoutes from '../../src/http/web-routes.ts'
import { build, createClient, createSerial, gql, restValidate } from '../helper.ts'

const chromium = findChromium('the portal test')

t.test('portal: look up a serial, release a device, download a certificate', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 2 })
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'laptop-1' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'laptop-2' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'laptop-3' })).body.code, 'TOO_MANY_DEVICES', 'both seats taken')

  const browser = await playwright.launch({
    executablePath: chromium,
    args: CHROMIUM_ARGS
  })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ acceptDownloads: true })
  const page = await context.newPage()
  const outside: string[] = []
  await page.route('**/*', async (route) => {
    const url = route.request().url()
    if (url.startsWith(`${origin}/`) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue()
    outside.push(url)
    return route.abort('blockedbyclient')
  })
  const problems: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
  page.on('pageerror', (error) => problems.push(error.message))

  const res = await page.goto(`${origin}/portal`)
  t.equal(res?.status(), 200)
  const headers = res?.headers() ?? {}
  t.match(headers['content-security-policy'], /script-src 'self'(;|$)/, 'scripts from the service only, no inline script')
  t.notMatch(headers['content-security-policy'], /https?:|\*|unsafe-inline/, 'no outside host, no inline')
  t.equal(headers['cache-control'], 'no-cache', 'the page is revalidated')

  // An unknown (well-formed) number: a clear message, no crash.
  await page.getByLabel('Serial number').fill(generateSerialNumber())
  await page.getByRole('button', { name: 'Show devices' }).click()
  await page.getByText('Not found.').waitFor({ timeout: 15_000 })
  await page.getByLabel('Serial number').fill('not a serial')
  await page.getByRole('button', { name: 'Show devices' }).click()
  await page.getByText(/Invalid format/).waitFor({ timeout: 15_000 })

  await page.getByLabel('Serial number').fill(serial.serialNumber.toLowerCase())
  await page.getByRole('button', { name: 'Show devices' }).click()
  const devices = page.getByRole('region', { name: 'Devices' })
  await devices.getByRole('cell', { name: 'laptop-1' }).waitFor({ timeout: 15_000 })
  t.equal(await page.getByTestId('license-status').innerText(), 'ACTIVE')
  t.match(await page.getByRole('region', { name: 'License details' }).innerText(), /2 of 2/, 'seats in use shown')

  const row = devices.getByRole('row').filter({ hasText: 'laptop-1' })
  await row.getByRole('button', { name: 'Release' }).click()
  await page.getByText('Released laptop-1: its seat is free.').waitFor({ timeout: 15_000 })
  t.equal(await devices.getByRole('cell', { name: 'laptop-1' }).count(), 0, 'the released device left the list')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'laptop-3' })).body.code, 'VALID', 'the freed seat takes a new device')

  // Offline machine: a free seat is needed again, so release laptop-3 through the API first.
  await app.inject({ method: 'POST', url: '/api/v1/serials/release', payload: { serialNumber: serial.serialNumber, deviceId: 'laptop-3' } })
  await page.getByLabel('Device id').fill('offline-box')
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 15_000 }),
    page.getByRole('button', { name: 'Download certificate' }).click()
  ])
  t.equal(download.suggestedFilename(), 'license-offline-box.lic')
  const certificate = readFileSync(await download.path(), 'utf8').trim()
  t.match(certificate, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'compact certificate form')
  const payload = JSON.parse(Buffer.from(certificate.split('.')[0]!, 'base64url').toString('utf8'))
  t.equal(payload.device, 'offline-box')
  t.equal(payload.sub, serial.id)
  await devices.getByRole('cell', { name: 'offline-box' }).waitFor({ timeout: 15_000 })

  const stored = await page.evaluate(() => { const g = globalThis as any; return JSON.stringify([Object.entries(g.localStorage), Object.entries(g.sessionStorage), g.document.cookie]) })
  const compact = serial.serialNumber.replace(/-/g, '')
  t.notOk(stored.toUpperCase().replace(/-/g, '').includes(compact), 'the number is not stored by the page')

  t.same(await seriousAxeViolations(page), [], 'axe: no serious or critical violation')

  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: join(artifacts, 'portal.png'), fullPage: true })
  t.same(outside, [], 'no request left the service')
  t.same(problems, [], 'no console error')
})

t.test('portal and console answer 200 with cache headers; assets are immutable', async (t) => {
  ensureWebBuild()
  const app = await build(t, { background: false })
  for (const url of ['/portal', '/dashboard']) {
    const res = await app.inject({ url, headers: { host: 'serials.example:8443' } })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^text\/html/)
    t.match(res.headers['content-security-policy'], /connect-src 'self' ws:\/\/serials\.example:8443 wss:\/\/serials\.example:8443/, 'the same host\'s sockets only')
    const asset = /src="(\/web\/assets\/[^"]+\.js)"/.exec(res.body)?.[1]
    t.ok(asset, 'the page loads a hashed script')
    const js = await app.inject({ url: asset! })
    t.equal(js.statusCode, 200)
    t.match(js.headers['cache-control'], /immutable/)
  }
  const evil = await app.inject({ url: '/portal', headers: { host: "x; script-src 'unsafe-inline'" } })
  t.notMatch(evil.headers['content-security-policy'], /unsafe-inline/, 'a forged Host never reaches the policy')
  t.ok([400, 403, 404].includes((await app.inject({ url: '/web/assets/..%2F..%2Fpackage.json' })).statusCode), 'no way out of the assets folder')
  t.equal((await app.inject({ url: '/web/assets/missing.js' })).statusCode, 404)
})

t.test('licenseStatus: public, NOT_FOUND for unknown numbers, inside the per-IP public budget', async (t) => {
  const app = await build(t, { background: false, env: { VALIDATE_RATE_LIMIT: '3' } })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 4 })
  const query = 'query ($n: String!) { licenseStatus(serialNumber: $n) { maskedNumber status maxDevices entitlements devices { deviceId } } }'
  const mine = await gql(app, query, { n: serial.serialNumber }, null)
  t.equal(mine.errors, undefined, 'anonymous caller answered')
  t.same(mine.data?.licenseStatus, { maskedNumber: `*****-*****-*****-*****-${serial.serialNumber.slice(-5)}`, status: 'ACTIVE', maxDevices: 4, entitlements: [], devices: [] })
  t.equal((await gql(app, query, { n: generateSerialNumber() }, null)).errors?.[0]?.extensions.code, 'NOT_FOUND', 'an unknown well-formed number')
  t.equal((await gql(app, query, { n: 'not a serial' }, null)).errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.equal((await gql(app, query, { n: serial.serialNumber }, null)).errors?.[0]?.extensions.code, 'RATE_LIMITED', 'the fourth public call from this address is refused')
})

t.test('without a build, the pages answer 503 telling to run npm run build', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(webRoutes, { dir: join(root, 'test-artifacts', 'no-such-build') })
  for (const url of ['/portal', '/dashboard', '/web/assets/portal-abc.js']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 503, url)
    const body = res.json()
    t.equal(body.statusCode, 503)
    t.equal(body.code, 'INTERNAL')
    t.match(body.message, /npm run build/)
  }
})
