// The operator console keeps no API key in the browser: the key is exchanged at sign-in for a
// short-lived token (issueToken), and only that token is kept (this tab's session storage). The
// console works with it (GraphQL and the live subscription), and asks for the key again when the
// token expires or is refused.
import type { Page } from 'playwright-core'
import t from 'tap'
import { CHROMIUM_ARGS, ensureWebBuild, findChromium } from './browser.ts'
import { ADMIN_KEY, build, createApiKey, createClient, createSerial, gqlOk } from '../helper.ts'

const chromium = findChromium('the console credentials test')
t.setTimeout(300_000)

/** Everything the page could keep between visits: both storages and every cookie, as one text. */
async function storedText (page: Page): Promise<string> {
  const storages = await page.evaluate(() => {
    const g = globalThis as any
    const dump = (s: any) => Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))])
    return JSON.stringify([dump(g.localStorage), dump(g.sessionStorage), g.document.cookie])
  })
  return storages + JSON.stringify(await page.context().cookies())
}

t.test('console: the API key is exchanged for a token and never stored; the console works with the token', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  // A key of its own, so its secret part is a string no other page state could hold by chance.
  const key = await createApiKey(app, 'ADMIN')
  const secret = key.slice(key.indexOf('_', 4) + 1) // srl_<keyId>_<secret>

  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (error) => problems.push(error.message))
  const sent: string[] = []
  page.on('request', (request) => { if (request.url().endsWith('/graphql')) sent.push(request.headers().authorization ?? '') })
  await page.goto(`${origin}/dashboard`)
  await page.getByLabel('API key').fill(key)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText(/Signed in as ADMIN/).waitFor({ timeout: 15_000 })
  const live = page.getByRole('region', { name: 'Live usage' })
  await live.locator('[data-state="live"]').waitFor({ timeout: 30_000 })

  let kept = await storedText(page)
  t.notOk(kept.includes(key), 'the key is in no storage and no cookie')
  t.notOk(kept.includes(secret), 'nor its secret part')
  t.equal(await page.getByLabel('API key').inputValue(), '', 'nor in the sign-in field')
  const session = JSON.parse(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('serials.console.session'))) as { token: string, expiresAt: number }
  t.match(session.token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a token (JWT) is kept instead')
  t.ok(session.expiresAt > Date.now() + 50 * 60_000 && session.expiresAt <= Date.now() + 3600_000 + 5_000, 'it lives one hour')
  t.equal(sent.filter((h) => h.includes(key)).length, 1, 'the key went to the service once, to get the token')

  // The console still works: a look-up by number and the live subscription, both with the token.
  await page.getByLabel('Find by serial number').fill(serial.serialNumber)
  await page.getByRole('button', { name: 'Search' }).click()
  await page.getByTestId('serial-status').getByText('ACTIVE').waitFor({ timeout: 15_000 })
  const row = live.getByRole('row').filter({ hasText: 'token-device' })
  for (let i = 1; i <= 20 && await row.count() === 0; i++) {
    await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'token-device', quantity: 1 } })
    await row.first().waitFor({ timeout: 3_000 }).catch(() => undefined)
  }
  await row.first().waitFor({ timeout: 10_000 })
  t.ok(sent.slice(1).every((h) => h === `Bearer ${session.token}` || h === ''), 'every later call carried the token, not the key')

  // A reload keeps the session (the token), still without the key.
  await page.reload()
  await page.getByText(/Signed in as ADMIN/).waitFor({ timeout: 15_000 })
  kept = await storedText(page)
  t.notOk(kept.includes(key) || kept.includes(secret), 'after a reload: still no key')
  t.same(problems, [], 'no page error')
})

t.test('console: an expired token asks for the key again', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  // The page's clock is ours: an hour passes in an instant.
  await page.clock.install()
  await page.goto(`${origin}/dashboard`)
  await page.getByLabel('API key').fill(ADMIN_KEY)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText(/Signed in as ADMIN/).waitFor({ timeout: 15_000 })
  await page.clock.fastForward('01:00:01')
  await page.getByText('Your session has expired; sign in again.').waitFor({ timeout: 15_000 })
  t.ok(await page.getByLabel('API key').isVisible(), 'the sign-in form is back')
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.getItem('serials.console.session')), null, 'the token is forgotten')
})

t.test('console: a token the service refuses (its key revoked, or tampered) asks for the key again', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  ensureWebBuild()
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const key = await createApiKey(app, 'ADMIN')
  const { apiKeys } = await gqlOk<{ apiKeys: Array<{ id: string, prefix: string }> }>(app, '{ apiKeys { id prefix } }')
  const keyId = apiKeys.find((k) => key.startsWith(k.prefix))!.id
  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(`${origin}/dashboard`)
  await page.getByLabel('API key').fill(key)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText(/Signed in as ADMIN/).waitFor({ timeout: 15_000 })

  // Any call answered AUTHENTICATION_ERROR (the token lapsed early, say) ends the session.
  await page.route('**/graphql', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ data: null, errors: [{ message: 'API key or token is not valid', extensions: { code: 'AUTHENTICATION_ERROR' } }] }) }))
  // A search makes a call; on a loaded machine the console's own background calls may be refused
  // first and end the session before the search is typed: either way the session must end.
  try {
    await page.getByLabel('Find by serial number').fill('AAAAA-AAAAA-AAAAA-AAAAA-AAAAA', { timeout: 5_000 })
    await page.getByRole('button', { name: 'Search' }).click({ timeout: 5_000 })
  } catch { /* the session ended first: the sign-in form replaced the search */ }
  await page.getByText(/Your session has ended/).waitFor({ timeout: 15_000 })
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 0, 'the refused token is forgotten')
  await page.unroute('**/graphql')
  await page.getByLabel('API key').fill(key)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText(/Signed in as ADMIN/).waitFor({ timeout: 15_000 })

  // Revoked while the console is open: the live subscription is closed with 4403 at once (and any
  // call would answer AUTHENTICATION_ERROR), which ends the session.
  await page.getByRole('region', { name: 'Live usage' }).locator('[data-state="live"]').waitFor({ timeout: 30_000 })
  await gqlOk(app, 'mutation ($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id } }', { i: { id: keyId } })
  await page.getByText(/Your session has ended/).waitFor({ timeout: 15_000 })
  t.ok(await page.getByLabel('API key').isVisible(), 'the sign-in form is shown')
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 0, 'nothing is kept')

  // A tampered token, on load.
  await page.getByLabel('API key').fill(ADMIN_KEY)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText(/Signed in as ADMIN/).waitFor({ timeout: 15_000 })
  await page.evaluate(() => {
    const storage = (globalThis as any).sessionStorage
    const session = JSON.parse(storage.getItem('serials.console.session'))
    storage.setItem('serials.console.session', JSON.stringify({ ...session, token: `${session.token}x` }))
  })
  await page.reload()
  await page.getByText(/Your session has ended/).waitFor({ timeout: 15_000 })
  t.equal(await page.evaluate(() => (globalThis as any).sessionStorage.length), 0, 'a refused token is forgotten')

  // A console signed in before this release kept the key itself: it is wiped on load.
  await page.evaluate((k) => { (globalThis as any).sessionStorage.setItem('serials.console.apiKey', k) }, ADMIN_KEY)
  await page.reload()
  await page.getByLabel('API key').waitFor({ timeout: 15_000 })
  t.notOk((await storedText(page)).includes(ADMIN_KEY), 'a key stored by an older console is removed')
})
