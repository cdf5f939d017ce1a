// The operator console in real Chromium against a real service, with every request that leaves
// the service blocked: sign in with an API key, see a usage event recorded through REST arrive in
// `Live usage`, revoke a serial from the serials view and see validation answer REVOKED; an
// AUDITOR's change buttons are disabled; no console error, no serious axe finding.
import { mkdirSync } from 'node:fs'
import type { Locator } from 'playwright-core'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { artifacts, CHROMIUM_ARGS, ensureWebBuild, findChromium, seriousAxeViolations } from './browser.ts'
import { ADMIN_KEY, build, createApiKey, createClient, createSerial, restValidate } from '../helper.ts'

const chromium = findChromium('the console test')
// Four browser sessions, one waiting out two 10-second chart refreshes: more than the default 180 s
// on a busy machine.
t.setTimeout(480_000)

/** Waits until the element's rendered text (cells apart) matches; hasText filters see text run together. */
/** A fresh Chromium page signed in to the console with `key`; page errors are collected in `problems`. */
async function signedIn (t: Test, origin: string, key: string) {
  const { chromium: playwright } = await import('playwright-core')
  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (error) => problems.push(error.message))
  await page.goto(`${origin}/dashboard`)
  await page.getByLabel('API key').fill(key)
  await page.getByRole('button', { name: 'Sign in' }).click()
  return { page, problems }
}

async function untilText (locator: Locator, pattern: RegExp, timeout = 10_000): Promise<string> {
  const end = Date.now() + timeout
  let text = ''
  for (;;) {
    text = await locator.first().innerText({ timeout: 1_000 }).catch(() => '')
    if (pattern.test(text)) return text
    if (Date.now() > end) throw new Error(`timed out waiting for ${pattern} (last text: ${JSON.stringify(text)})`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

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
  // Feature names of this run only: the charts show every client, and a shared database keeps others'.
  const tag = Date.now().toString(36)
  const pdfFeature = `export-pdf-${tag}`
  const printFeature = `print-${tag}`

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
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 1, 'the session (a token, never the key: console-credentials.test.ts) is in session storage')
  t.equal(await page.evaluate(() => (globalThis as any).localStorage.length), 0, 'and nowhere else')

  // The socket is up; the subscription may still be registering on the server: record until one
  // shows (each event is distinct, so the first that shows is proof of live delivery).
  const row = live.getByRole('row').filter({ hasText: 'console-device' })
  for (let i = 1; i <= 20 && await row.count() === 0; i++) {
    const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'console-device', quantity: 7, feature: pdfFeature } })
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
  await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'second-device', quantity: 2, feature: printFeature } })
  await live.getByRole('row').filter({ hasText: 'second-device' }).waitFor({ timeout: 10_000 })
  t.match(await live.locator('tbody tr').first().innerText(), /second-device/, 'newest first')

  // Usage per feature: the 24-hour figures, then each live event on top (every console-device event
  // was recorded after sign-in, so the chart's count is the number of rows Live usage shows).
  const features = page.getByRole('region', { name: 'Usage per feature' })
  await features.getByRole('heading', { name: 'Usage per feature' }).waitFor()
  await features.getByText('The numbers per feature').click()
  const shown = await live.getByRole('row').filter({ hasText: 'console-device' }).count()
  await untilText(features.getByRole('row', { name: pdfFeature }), new RegExp(`^\\s*${pdfFeature}\\s+${shown}\\s+${7 * shown}\\s*$`))
  await untilText(features.getByRole('row', { name: printFeature }), new RegExp(`^\\s*${printFeature}\\s+1\\s+2\\s*$`))
  t.match(await features.locator('#features-summary').innerText(), /^\d+ usage events?, quantity \d+, over \d+ features?; the most used: /, 'the summary states the figures')
  t.equal(await features.getByRole('img', { name: /Usage quantity per feature/ }).locator('canvas').count(), 1, 'the bars are drawn')

  // Validations per minute: read every 10 s; recordUsage validated each event (VALID).
  const validations = page.getByRole('region', { name: 'Validations per minute' })
  t.match(await validations.innerText(), /updated every 10 s/)
  await validations.getByText(/Last 60 minutes: \d+ validations? — VALID \d+/).waitFor({ timeout: 30_000 })
  await validations.getByRole('list', { name: /Legend/ }).getByText('VALID', { exact: true }).waitFor()

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
  // The REVOKED answer reaches the validations chart within a flush and a refresh: a second series,
  // named in the legend and in the table of numbers.
  await validations.getByRole('list', { name: /Legend/ }).getByText('REVOKED', { exact: true }).waitFor({ timeout: 30_000 })
  await validations.getByText('The numbers per minute').click()
  t.match(await validations.getByRole('table').innerText(), /REVOKED/, 'the table has a REVOKED column')
  t.match(await validations.locator('#validations-summary').innerText(), /REVOKED [1-9]/)

  t.same(await seriousAxeViolations(page), [], 'axe: no serious or critical violation')
  await page.locator('#history-chart canvas').waitFor({ timeout: 15_000 })
  t.equal(await page.locator('#history-message').innerText(), '', 'the 24-hour chart loaded')
  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: join(artifacts, 'console.png'), fullPage: true })
  await page.evaluate(() => (globalThis as any).scrollTo(0, 0))
  await page.screenshot({ path: join(artifacts, 'console-top.png') })
  // From the top of the page to the end of the usage-per-feature chart (docs/images/console.png).
  const charts = await page.locator('#features').boundingBox()
  if (charts) await page.screenshot({ path: join(artifacts, 'console-charts.png'), fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(charts.y + charts.height + 16) } })
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

  // The session survives a reload of the tab (session storage), and Sign out forgets it.
  await page.reload()
  await page.getByText(/Signed in as AUDITOR/).waitFor({ timeout: 15_000 })
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByLabel('API key').waitFor({ timeout: 15_000 })
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 0, 'signed out: the session is gone')
})

t.test('console: a MANAGER sees its own client only, live usage included', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const mine = await createClient(app)
  const other = await createClient(app)
  const mySerial = await createSerial(app, mine.id)
  const otherSerial = await createSerial(app, other.id)
  const manager = await createApiKey(app, 'MANAGER', mine.id)

  const { page, problems } = await signedIn(t, origin, manager)
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

t.test('console: Live usage resumes after a connection dropped before the first event', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const feature = `resume-${Date.now().toString(36)}`

  const { page, problems } = await signedIn(t, origin, ADMIN_KEY)
  const live = page.getByRole('region', { name: 'Live usage' })
  await live.locator('[data-state="live"]').waitFor({ timeout: 30_000 })
  t.equal(await live.locator('tbody tr').count(), 0, 'no event shown yet')

  // Dropped before any event: the page subscribed with after = the seq usageByFeature read at
  // sign-in, so the reconnect replays what was recorded while it was away.
  for (const socket of app.websocketServer.clients) socket.terminate()
  const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'before-first', quantity: 4, feature } })
  t.equal(usage.statusCode, 201)
  await live.getByRole('row').filter({ hasText: 'before-first' }).waitFor({ timeout: 30_000 })
  await live.locator('[data-state="live"]').waitFor({ timeout: 30_000 })
  t.equal(await live.getByRole('row').filter({ hasText: 'before-first' }).count(), 1, 'the event recorded while away arrives once')
  // And the feature chart counted it once.
  const features = page.getByRole('region', { name: 'Usage per feature' })
  await features.getByText('The numbers per feature').click()
  await untilText(features.getByRole('row', { name: feature }), new RegExp(`^\\s*${feature}\\s+1\\s+4\\s*$`))
  t.same(problems, [], 'no page error')
})
