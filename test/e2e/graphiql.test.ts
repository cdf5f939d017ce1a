// GraphiQL in real Chromium with every request that leaves the service blocked: the page renders
// from the service's own assets and runs a query (air-gapped installs have no CDN). The key pasted
// into the Headers tab is never stored: local storage is shared with every page of the origin.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ADMIN_KEY, build } from '../helper.ts'
import { artifacts, CHROMIUM_ARGS, findChromium } from './browser.ts'

const chromium = findChromium('the GraphiQL test')

/** Everything the page could keep between visits: both storages and the cookies, as one text. */
async function storedText (page: import('playwright-core').Page): Promise<string> {
  const storages = await page.evaluate(() => {
    const g = globalThis as any
    const dump = (s: any) => Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))])
    return JSON.stringify([dump(g.localStorage), dump(g.sessionStorage), g.document.cookie])
  })
  return storages + JSON.stringify(await page.context().cookies())
}

t.test('GraphiQL renders offline and runs a query with a pasted key it never stores', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const browser = await playwright.launch({
    executablePath: chromium,
    args: CHROMIUM_ARGS // Playwright adds a fresh empty profile
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()

  const outside: string[] = []
  const served: string[] = []
  await page.route('**/*', async (route) => {
    const url = route.request().url()
    if (url.startsWith(`${origin}/`)) { served.push(new URL(url).pathname); return route.continue() }
    if (url.startsWith('data:')) return route.continue()
    outside.push(url)
    return route.abort('blockedbyclient')
  })
  const problems: string[] = []
  page.on('console', (message) => { if (message.type() === 'error') problems.push(message.text()) })
  page.on('pageerror', (error) => problems.push(error.message))
  // GraphiQL keeps the query editor in local storage: start with a query.
  await page.addInitScript(() => {
    const storage = (globalThis as unknown as { localStorage: { setItem (k: string, v: string): void } }).localStorage
    storage.setItem('graphiql:query', '{ me { role } publicKey { algorithm } }')
  })

  const res = await page.goto(`${origin}/graphiql`)
  t.equal(res?.status(), 200)
  const csp = res?.headers()['content-security-policy'] ?? ''
  t.match(csp, /default-src 'self'/, 'a Content-Security-Policy limited to the service')
  t.match(csp, /script-src 'self'(;|$)/, 'scripts from the service only, no inline script')
  t.notMatch(csp, /https?:|\*/, 'no outside host in the policy')

  await page.locator('.graphiql-container').waitFor({ timeout: 30_000 })
  // Paste the key into the Headers tab, as the README says.
  await page.getByRole('button', { name: 'Headers' }).click()
  const headersEditor = page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')
  await headersEditor.click()
  await page.keyboard.press('ControlOrMeta+A')
  await page.keyboard.insertText(JSON.stringify({ authorization: `Bearer ${ADMIN_KEY}` }))
  await page.locator('.graphiql-execute-button').click()
  const result = page.locator('.result-window')
  await result.getByText('"ADMIN"').waitFor({ timeout: 30_000 })
  const text = await result.innerText()
  t.match(text, /"role": "ADMIN"/, 'the query ran with the key from the Headers tab')
  t.match(text, /"algorithm": "(RSA-PSS-4096|ED25519)"/)
  t.notOk((await storedText(page)).includes(ADMIN_KEY), 'the key is in no storage and no cookie while the page is open')

  // After a reload (GraphiQL stores on change and on unload) the key is gone, and only the page's
  // memory ever held it.
  await page.reload()
  await page.locator('.graphiql-container').waitFor({ timeout: 30_000 })
  const kept = await storedText(page)
  t.notOk(kept.includes(ADMIN_KEY), 'after a reload no storage and no cookie holds the key')
  t.notOk(kept.includes(ADMIN_KEY.slice(0, 16)), 'nor a part of it')
  t.match(kept, /graphiql:query/, 'the query is still kept (only headers are not)')
  await page.getByRole('button', { name: 'Headers' }).click()
  t.notMatch(await headersEditor.innerText(), new RegExp(ADMIN_KEY), 'the Headers tab starts from the placeholder again')

  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: join(artifacts, 'graphiql.png') })
  t.same(outside, [], 'no request left the service')
  t.ok(served.includes('/graphiql/assets/graphiql.min.js'), 'GraphiQL came from the service')
  t.ok(served.includes('/graphiql/assets/react.production.min.js'), 'React came from the service')
  t.same(problems.filter((p) => /Content Security Policy|Refused to/.test(p)), [], 'no CSP violation')
})

t.test('GraphiQL wipes headers an older release persisted', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  const { chromium: playwright } = await import('playwright-core')
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.route('**/*', async (route) => route.request().url().startsWith(`${origin}/`) ? route.continue() : route.abort('blockedbyclient'))
  // What a release with shouldPersistHeaders left behind: the Headers tab, a tab and the history holding it.
  await page.goto(`${origin}/graphiql/assets/page.css`)
  await page.evaluate(([key]) => {
    const storage = (globalThis as any).localStorage
    const headers = JSON.stringify({ authorization: `Bearer ${key}` })
    storage.setItem('graphiql:headers', headers)
    storage.setItem('graphiql:shouldPersistHeaders', 'true')
    storage.setItem('graphiql:tabState', JSON.stringify({ activeTabIndex: 0, tabs: [{ id: 'a', hash: null, title: 'x', query: '{ me { role } }', variables: null, headers, operationName: null, response: null }] }))
    storage.setItem('graphiql:queries', JSON.stringify({ queries: [{ query: '{ me { role } }', variables: '', headers }] }))
  }, [ADMIN_KEY])
  await page.goto(`${origin}/graphiql`)
  await page.locator('.graphiql-container').waitFor({ timeout: 30_000 })
  const kept = await storedText(page)
  t.notOk(kept.includes(ADMIN_KEY), 'the old key is gone from local storage')
  t.match(kept, /graphiql:queries.*me \{ role \}/, 'the history itself is kept')
  await page.getByRole('button', { name: 'Headers' }).click()
  t.notMatch(await page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror').innerText(), new RegExp(ADMIN_KEY), 'and from the Headers tab')
})

t.test('the asset route serves only the listed files', async (t) => {
  const app = await build(t, { background: false })
  const css = await app.inject({ url: '/graphiql/assets/graphiql.min.css' })
  t.equal(css.statusCode, 200)
  t.match(css.headers['content-type'], /^text\/css/)
  for (const url of ['/graphiql/assets/..%2F..%2Fpackage.json', '/graphiql/assets/package.json', '/graphiql/assets/graphiql.min.js.map']) {
    t.equal((await app.inject({ url })).statusCode, 404, url)
  }
})

t.test('no GraphiQL when it is off', async (t) => {
  const app = await build(t, { background: false, env: { GRAPHIQL: 'false' } })
  t.equal((await app.inject({ url: '/graphiql' })).statusCode, 404)
  t.equal((await app.inject({ url: '/graphiql/assets/graphiql.min.js' })).statusCode, 404)
})
