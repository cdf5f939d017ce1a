// The operator console in real Chromium against a real service, with every request that leaves
// the service blocked: sign in with an API key, see a usage event recorded through REST arrive in
// `Live usage`, revoke a serial from the serials view and see validation answer REVOKED; an
// AUDITOR's change buttons are disabled; no console error, no serious axe finding.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { artifacts, CHROMIUM_ARGS, ensureWebBuild, findChromium, seriousAxeViolations } from './browser.ts'
import { ADMIN_KEY, build, createApiKey, createClient, createSerial, restValidate } from '../helper.ts'

const chromium = findChromium('the console test')

t.test('console: sign in, live usage, revoke a serial', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  // Background workers on: the outbox relay feeds the subscription.
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 3 })
  const tail = serial.serialNumber.slice(-5)

  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } })
  const outside: string[] = []
  await page.route('**/*', async (route) => {
    const url = route.request().url()
    if (url.startsWith(`${origin}/`) || url.startsWith('data:')) return route.continue()
    outside.push(url)
    return route.abort('blockedbyclient')
  })
  const problems: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
  page.on('pageerror', (error) => problems.push(error.message))

  const res = await page.goto(`${origin}/dashboard`)
  t.equal(res?.status(), 200)
  t.match(res?.headers()['content-security-policy'], /script-src 'self'(;|$)/)
  await page.getByLabel('API key').fill(ADMIN_KEY)
  await page.getByRole('button', { name: 'Sign in' }).click()
  const live = page.getByRole('region', { name: 'Live usage' })
  await live.locator('[data-state="live"]').waitFor({ timeout: 30_000 })
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 1, 'the key is in session storage')
  t.equal(await page.evaluate(() => (globalThis as any).localStorage.length), 0, 'and nowhere else')

  // The socket is up; the subscription may still be registering on the server: record until one
  // shows (each event is distinct, so the first that shows is proof of live delivery).
  const row = live.getByRole('row').filter({ hasText: 'console-device' })
  for (let i = 1; i <= 20 && await row.count() === 0; i++) {
    const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'console-device', quantity: 7, feature: 'export-pdf' } })
    t.equal(usage.statusCode, 201)
    await row.first().waitFor({ timeout: 3_000 }).catch(() => undefined)
  }
  await row.first().waitFor({ timeout: 10_000 })
  const text = await row.first().innerText()
  t.match(text, /export-pdf/, 'feature shown')
  t.match(text, /\b7\b/, 'quantity shown')
  await row.first().getByText(`*****-*****-*****-*****-${tail}`).waitFor({ timeout: 10_000 })
  t.notOk((await live.innerText()).includes(serial.serialNumber), 'never the full number')

  // Newest first: a second event lands above the first.
  await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'second-device', quantity: 2, feature: 'print' } })
  await live.getByRole('row').filter({ hasText: 'second-device' }).waitFor({ timeout: 10_000 })
  t.match(await live.locator('tbody tr').first().innerText(), /second-device/, 'newest first')

  // A dropped connection: the page reconnects and resubscribes after the last seq it showed, so an
  // event recorded while it was away still arrives, once.
  for (const socket of app.websocketServer.clients) socket.terminate()
  await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'while-away', quantity: 3, feature: 'sync' } })
  await live.getByRole('row').filter({ hasText: 'while-away' }).waitFor({ timeout: 30_000 })
  await live.locator('[data-state="live"]').waitFor({ timeout: 30_000 })
  t.equal(await live.getByRole('row').filter({ hasText: 'while-away' }).count(), 1, 'the missed event arrives once after the reconnect')
  t.equal(await live.getByRole('row').filter({ hasText: 'second-device' }).count(), 1, 'no event shown twice')

  // Serials view: find by number, revoke.
  await page.getByLabel('Find by serial number').fill(serial.serialNumber)
  await page.getByRole('button', { name: 'Search' }).click()
  await page.getByTestId('serial-status').getByText('ACTIVE').waitFor({ timeout: 15_000 })
  page.once('dialog', (dialog) => { void dialog.accept() })
  await page.getByRole('button', { name: 'Revoke', exact: true }).click()
  await page.getByTestId('serial-status').getByText(/REVOKED/).waitFor({ timeout: 15_000 })
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'console-device' })).body.code, 'REVOKED', 'validation answers REVOKED')

  t.same(await seriousAxeViolations(page), [], 'axe: no serious or critical violation')
  await page.locator('#history-chart canvas').waitFor({ timeout: 15_000 })
  t.equal(await page.locator('#history-message').innerText(), '', 'the 24-hour chart loaded')
  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: join(artifacts, 'console.png'), fullPage: true })
  await page.evaluate(() => (globalThis as any).scrollTo(0, 0))
  await page.screenshot({ path: join(artifacts, 'console-top.png') })
  t.same(outside, [], 'no request left the service')
  t.same(problems, [], 'no console error')
})

t.test('console: an AUDITOR sees serials but cannot change them; a bad key is refused', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const auditor = await createApiKey(app, 'AUDITOR')

  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(`${origin}/dashboard`)
  await page.getByLabel('API key').fill('not-a-key-at-all')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('The API key was not accepted.').waitFor({ timeout: 15_000 })
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 0, 'a refused key is not kept')

  await page.getByLabel('API key').fill(auditor)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText(/Signed in as AUDITOR/).waitFor({ timeout: 15_000 })
  await page.getByLabel('Find by serial number').fill(serial.serialNumber)
  await page.getByRole('button', { name: 'Search' }).click()
  await page.getByTestId('serial-status').getByText('ACTIVE').waitFor({ timeout: 15_000 })
  t.ok(await page.getByRole('button', { name: 'Revoke', exact: true }).isDisabled(), 'Revoke is disabled for an AUDITOR')
  t.ok(await page.getByRole('button', { name: 'Suspend', exact: true }).isDisabled(), 'Suspend is disabled for an AUDITOR')

  // The key survives a reload of the tab (session storage), and Sign out forgets it.
  await page.reload()
  await page.getByText(/Signed in as AUDITOR/).waitFor({ timeout: 15_000 })
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByLabel('API key').waitFor({ timeout: 15_000 })
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 0, 'signed out: the key is gone')
})

t.test('console: a MANAGER sees its own client only, live usage included', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const mine = await createClient(app)
  const other = await createClient(app)
  const mySerial = await createSerial(app, mine.id)
  const otherSerial = await createSerial(app, other.id)
  const manager = await createApiKey(app, 'MANAGER', mine.id)

  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (error) => problems.push(error.message))
  await page.goto(`${origin}/dashboard`)
  await page.getByLabel('API key').fill(manager)
  await page.getByRole('button', { name: 'Sign in' }).click()
  const clients = page.getByRole('region', { name: 'Clients' })
  await clients.getByRole('cell', { name: mine.clientNumber }).waitFor({ timeout: 15_000 })
  t.equal(await clients.getByRole('cell', { name: other.clientNumber }).count(), 0, 'no other client listed')
  const serials = await page.getByRole('region', { name: 'Serials' }).innerText()
  t.ok(serials.includes(mySerial.serialNumber.slice(-5)), 'its serial listed')
  t.notOk(serials.includes(otherSerial.serialNumber.slice(-5)), 'no other client\'s serial')

  const live = page.getByRole('region', { name: 'Live usage' })
  await live.locator('[data-state="live"]').waitFor({ timeout: 30_000 })
  const row = live.getByRole('row').filter({ hasText: 'mine-device' })
  for (let i = 1; i <= 20 && await row.count() === 0; i++) {
    await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: otherSerial.serialNumber, deviceId: 'other-device', quantity: 1 } })
    await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: mySerial.serialNumber, deviceId: 'mine-device', quantity: 1 } })
    await row.first().waitFor({ timeout: 3_000 }).catch(() => undefined)
  }
  await row.first().waitFor({ timeout: 10_000 })
  t.equal(await live.getByRole('row').filter({ hasText: 'other-device' }).count(), 0, 'another client\'s usage never shows')
  t.same(problems, [], 'no page error')
})
