// GraphiQL in real Chromium with every request that leaves the service blocked: the page renders
// from the service's own assets and runs a query (air-gapped installs have no CDN).
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ADMIN_KEY, build } from '../helper.ts'
import { artifacts, CHROMIUM_ARGS, findChromium } from './browser.ts'

const chromium = findChromium('the GraphiQL test')

t.test('GraphiQL renders offline and runs a query', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
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
  // GraphiQL keeps the Headers tab and the editor in local storage: start with a key and a query.
  await page.addInitScript(([key]) => {
    const storage = (globalThis as unknown as { localStorage: { setItem (k: string, v: string): void } }).localStorage
    storage.setItem('graphiql:headers', JSON.stringify({ authorization: `Bearer ${key}` }))
    storage.setItem('graphiql:query', '{ me { role } publicKey { algorithm } }')
  }, [ADMIN_KEY])

  const res = await page.goto(`${origin}/graphiql`)
  t.equal(res?.status(), 200)
  const csp = res?.headers()['content-security-policy'] ?? ''
  t.match(csp, /default-src 'self'/, 'a Content-Security-Policy limited to the service')
  t.match(csp, /script-src 'self'(;|$)/, 'scripts from the service only, no inline script')
  t.notMatch(csp, /https?:|\*/, 'no outside host in the policy')

  await page.locator('.graphiql-container').waitFor({ timeout: 30_000 })
  await page.locator('.graphiql-execute-button').click()
  const result = page.locator('.result-window')
  await result.getByText('"ADMIN"').waitFor({ timeout: 30_000 })
  const text = await result.innerText()
  t.match(text, /"role": "ADMIN"/, 'the query ran with the key from the Headers tab')
  t.match(text, /"algorithm": "(RSA-PSS-4096|ED25519)"/)

  mkdirSync(artifacts, { recursive: true })
  await page.screenshot({ path: join(artifacts, 'graphiql.png') })
  t.same(outside, [], 'no request left the service')
  t.ok(served.includes('/graphiql/assets/graphiql.min.js'), 'GraphiQL came from the service')
  t.ok(served.includes('/graphiql/assets/react.production.min.js'), 'React came from the service')
  t.same(problems.filter((p) => /Content Security Policy|Refused to/.test(p)), [], 'no CSP violation')
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
