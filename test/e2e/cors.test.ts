// CORS_ORIGINS: an app's page on another origin calls the service through @serials/client in real
// Chromium. Without the setting the browser refuses the answers (and the SDK's NETWORK_ERROR says a
// CORS refusal is a possible cause); with the page's origin listed, validate, the revocation list
// (ETag read across origins) and checkout work, while credentials and other routes stay closed.
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import ts from 'typescript'
import { CHROMIUM_ARGS, findChromium, root } from './browser.ts'
import { ADMIN_KEY, build, createClient, createSerial, testConfig } from '../helper.ts'
import { isCorsPublicCall } from '../../src/http/cors.ts'

const chromium = findChromium('the CORS test')
t.setTimeout(300_000)

/** The vendor's app: a page and the SDK's own sources, transpiled as they are asked for. */
async function appServer (t: Test) {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://app').pathname
    const file = /^\/sdk\/([a-z0-9-]+\.ts)$/.exec(path)?.[1]
    if (path === '/') {
      res.setHeader('content-type', 'text/html; charset=utf-8')
      res.end('<!doctype html><html lang="en"><title>Vendor app</title><p>A vendor\'s app</p>' +
        '<script type="module">import * as sdk from "/sdk/index.ts"; globalThis.serialsSdk = sdk</script></html>')
    } else if (file) {
      readFile(join(root, 'packages/client/src', file), 'utf8').then((source) => {
        const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText
        res.setHeader('content-type', 'text/javascript; charset=utf-8')
        res.end(js)
      }, () => { res.statusCode = 404; res.end() })
    } else {
      res.statusCode = 404
      res.end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

interface PageOutcome { ok: boolean, code?: string, message?: string, result?: unknown }

/** Runs the SDK in the page: validate, then (if asked) the revocation list twice and a checkout. */
async function inPage (page: import('playwright-core').Page, input: { baseUrl: string, publicKey: string, serialNumber: string, more: boolean }): Promise<PageOutcome> {
  return page.evaluate(async ({ baseUrl, publicKey, serialNumber, more }) => {
    const sdk = (globalThis as unknown as { serialsSdk: typeof import('../../packages/client/src/index.ts') }).serialsSdk
    const license = sdk.createLicenseClient({ baseUrl, publicKey, deviceId: 'browser-1' })
    try {
      const answer = await license.validate(serialNumber)
      if (!more) return { ok: true, result: answer }
      const first = await license.fetchRevocations()
      const second = await license.fetchRevocations()
      const certificate = await license.checkout(serialNumber, 3)
      const offline = await license.verifyOffline(certificate)
      return { ok: true, result: { answer, sameList: first.token === second.token, offline } }
    } catch (error) {
      return { ok: false, code: (error as { code?: string }).code, message: (error as Error).message }
    }
  }, input)
}

t.test('a page on another origin: refused without CORS_ORIGINS, served with it', { skip: chromium ? false : 'needs /usr/bin/chromium' }, async (t) => {
  const { chromium: playwright } = await import('playwright-core')
  const appOrigin = await appServer(t)
  const closed = await build(t, { background: false })
  const open = await build(t, { background: false, env: { CORS_ORIGINS: `https://other.example.com, ${appOrigin}` } })
  const origins: string[] = []
  for (const app of [closed, open]) {
    await app.listen({ port: 0, host: '127.0.0.1' })
    origins.push(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  }
  const [closedOrigin, openOrigin] = origins as [string, string]
  const publicKey = (await (await fetch(`${openOrigin}/api/v1/public-key`)).json() as { pem: string }).pem
  const client = await createClient(open)
  const serial = await createSerial(open, client.id)

  const browser = await playwright.launch({ executablePath: chromium, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  // No request interception (page.route): Playwright's routing answers CORS preflights itself,
  // which would hide what this test is about. The page only talks to these loopback origins.
  const page = await browser.newPage()
  const requested: string[] = []
  page.on('request', (request) => requested.push(new URL(request.url()).origin))
  const lists: number[] = []
  page.on('response', (response) => { if (response.url().endsWith('/api/v1/revocations') && response.request().method() === 'GET') lists.push(response.status()) })
  await page.goto(`${appOrigin}/`)
  await page.waitForFunction(() => 'serialsSdk' in globalThis)

  const refused = await inPage(page, { baseUrl: closedOrigin, publicKey, serialNumber: serial.serialNumber, more: false })
  t.match(refused, { ok: false, code: 'NETWORK_ERROR' }, 'without CORS_ORIGINS the browser refuses: NETWORK_ERROR')
  t.match(refused.message, /CORS/, 'the message names a CORS refusal as a possible cause')
  t.match(refused.message, new RegExp(`page's origin \\(${appOrigin.replace(/[.]/g, '\\.')}\\)`), 'and the page\'s origin')

  const served = await inPage(page, { baseUrl: openOrigin, publicKey, serialNumber: serial.serialNumber, more: true })
  t.match(served, { ok: true, result: { answer: { valid: true, code: 'VALID', stale: false }, sameList: true, offline: { valid: true } } },
    'with the origin listed: signed validation, the revocation list (304 through the exposed ETag) and checkout work')
  t.same(lists, [200, 304], 'the second list request sent the ETag it could read (exposed), and got 304')

  // Credentials never cross: a request with an Authorization header fails its preflight.
  const withKey = await page.evaluate(async ({ url, key }) => {
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query: '{ me { role } }' }) })
      return `status ${res.status}`
    } catch (error) { return `refused: ${(error as Error).message}` }
  }, { url: `${openOrigin}/graphql`, key: ADMIN_KEY })
  t.match(withKey, /^refused/, 'an authenticated GraphQL call from the page is refused by the browser')
  const me = await page.evaluate(async (url) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ me { role } }' }) })
    return (await res.json() as { data?: { me?: { role: unknown } } }).data?.me?.role ?? null
  }, `${openOrigin}/graphql`)
  t.equal(me, null, 'anonymous GraphQL from the page is only the public API')
  t.same([...new Set(requested)].sort(), [appOrigin, closedOrigin, openOrigin].sort(), 'the page talked to these origins only')
})

t.test('which calls answer CORS, for which origins', async (t) => {
  const app = await build(t, { background: false, env: { CORS_ORIGINS: 'https://app.example.com' } })
  const preflight = (url: string, origin: string, method = 'POST', headers = 'content-type') => app.inject({
    method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers }
  })
  for (const [url, method] of [['/api/v1/serials/validate', 'POST'], ['/api/v1/serials/heartbeat', 'POST'], ['/api/v1/serials/usage', 'POST'], ['/api/v1/serials/release', 'POST'],
    ['/api/v1/revocations', 'GET'], ['/api/v1/public-key', 'GET'], ['/graphql', 'POST']] as const) {
    const res = await preflight(url, 'https://app.example.com', method)
    t.equal(res.statusCode, 204, `${method} ${url}: preflight answered`)
    t.equal(res.headers['access-control-allow-origin'], 'https://app.example.com')
    t.notOk(res.headers['access-control-allow-credentials'], 'no credentials')
    t.notMatch(String(res.headers['access-control-allow-headers']), /authorization|x-api-key/i, 'no credential header allowed')
  }
  t.notOk((await preflight('/api/v1/serials/validate', 'https://evil.example.com')).headers['access-control-allow-origin'], 'an origin not listed gets no CORS')
  for (const [url, method] of [['/metrics', 'GET'], ['/dashboard', 'GET'], ['/graphql', 'GET'], ['/health', 'GET'], ['/api/v1/serials/validate', 'DELETE']] as const) {
    const res = await preflight(url, 'https://app.example.com', method)
    t.notOk(res.headers['access-control-allow-origin'], `${method} ${url}: no CORS`)
  }
  const real = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { origin: 'https://app.example.com' }, payload: { serialNumber: 'AAAAA-AAAAA-AAAAA-AAAAA-AAAAA', deviceId: 'd' } })
  t.equal(real.headers['access-control-allow-origin'], 'https://app.example.com', 'the answer itself carries CORS')
  t.match(String(real.headers['access-control-expose-headers']), /ETag/i)
  const list = await app.inject({ method: 'GET', url: '/api/v1/revocations', headers: { origin: 'https://app.example.com' } })
  t.equal(list.headers['access-control-allow-origin'], 'https://app.example.com')
  t.match(String(list.headers.vary), /origin/i, 'Vary: Origin, for caches')

  // A 429 carries CORS too, so a page's SDK reads RATE_LIMITED rather than a network error.
  const limited = await build(t, { background: false, env: { CORS_ORIGINS: 'https://app.example.com', VALIDATE_RATE_LIMIT: '1', RATE_LIMIT: '1' } })
  const validate = () => limited.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { origin: 'https://app.example.com' }, payload: { serialNumber: 'AAAAA-AAAAA-AAAAA-AAAAA-AAAAA', deviceId: 'd' } })
  let answer = await validate()
  for (let i = 0; i < 5 && answer.statusCode !== 429; i++) answer = await validate()
  t.equal(answer.statusCode, 429)
  t.equal(answer.headers['access-control-allow-origin'], 'https://app.example.com', 'a 429 of the validation limit carries CORS')
  t.match(String(answer.headers['access-control-expose-headers']), /Retry-After/i, 'and exposes Retry-After')
  const listing = () => limited.inject({ method: 'GET', url: '/api/v1/revocations', headers: { origin: 'https://app.example.com' } })
  let listed = await listing()
  for (let i = 0; i < 5 && listed.statusCode !== 429; i++) listed = await listing()
  t.equal(listed.statusCode, 429)
  t.equal(listed.headers['access-control-allow-origin'], 'https://app.example.com', 'a 429 of the global limit carries CORS')

  const none = await build(t, { background: false })
  const res = await none.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { origin: 'https://app.example.com' }, payload: { serialNumber: 'AAAAA-AAAAA-AAAAA-AAAAA-AAAAA', deviceId: 'd' } })
  t.notOk(res.headers['access-control-allow-origin'], 'default: no CORS at all')
  t.equal((await none.inject({ method: 'OPTIONS', url: '/api/v1/serials/validate', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' } })).statusCode, 404, 'and no preflight route')
  t.ok(isCorsPublicCall('/api/v1', 'POST', '/api/v1/serials/validate') && !isCorsPublicCall('/api/v1', 'POST', '/api/v1/serialsx'))
})

t.test('CORS_ORIGINS must list origins', async (t) => {
  t.same((await testConfig({ env: { CORS_ORIGINS: ' https://a.example.com ,http://127.0.0.1:8080' } })).corsOrigins, ['https://a.example.com', 'http://127.0.0.1:8080'])
  t.same((await testConfig()).corsOrigins, [], 'none by default')
  for (const bad of ['https://a.example.com/', 'https://a.example.com/app', 'a.example.com', '*', 'https://A.example.com', 'https://a.example.com:443', 'ftp://a.example.com']) {
    await t.rejects(testConfig({ env: { CORS_ORIGINS: bad } }), { name: 'ConfigError', message: /^Invalid configuration: CORS_ORIGINS / }, bad)
  }
})
