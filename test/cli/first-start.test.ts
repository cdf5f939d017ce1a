// What a new user meets first (issue #28): the start-up log names the console and the portal on the
// address actually bound, and `/` sends a browser to the console while an API client keeps JSON.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { pageUrls, wantsPage } from '../../src/http/web-routes.ts'
import { build } from '../helper.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const CHROME_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7'

t.test('GET /: a browser is sent to /dashboard, an API client gets the contract\'s JSON', async (t) => {
  const app = await build(t, { background: false })
  for (const accept of [CHROME_ACCEPT, 'text/html', 'text/html;q=0.9, application/json;q=0.5']) {
    const page = await app.inject({ method: 'GET', url: '/', headers: { accept } })
    t.equal(page.statusCode, 302, accept)
    t.equal(page.headers.location, '/dashboard')
    t.match(page.headers.vary, /accept/i, 'caches keep the two answers apart')
  }
  for (const headers of [{}, { accept: '*/*' }, { accept: 'application/json' }, { accept: 'application/json, text/html;q=0.1' }, { accept: 'text/html;q=0' }]) {
    const api = await app.inject({ method: 'GET', url: '/', headers })
    t.equal(api.statusCode, 404, JSON.stringify(headers))
    t.match(api.headers['content-type'], /^application\/json/)
    t.match(api.json(), { statusCode: 404, code: 'NOT_FOUND', message: /\/graphql.*\/api\/v1.*\/dashboard.*\/portal/ })
  }
  const head = await app.inject({ method: 'HEAD', url: '/', headers: { accept: 'text/html' } })
  t.equal(head.statusCode, 302, 'HEAD like GET')
  const other = await app.inject({ method: 'GET', url: '/nothing-here', headers: { accept: 'text/html' } })
  t.equal(other.statusCode, 404, 'only / redirects')
})

t.test('wantsPage and pageUrls', async (t) => {
  t.equal(wantsPage(undefined), false)
  t.equal(wantsPage('*/*'), false)
  t.equal(wantsPage('TEXT/HTML'), true)
  t.equal(wantsPage('application/json;q=1, text/html;q=0.9'), false)
  t.same(pageUrls({ address: '127.0.0.1', family: 'IPv4', port: 3000 }, true),
    { dashboard: 'http://127.0.0.1:3000/dashboard', portal: 'http://127.0.0.1:3000/portal', graphiql: 'http://127.0.0.1:3000/graphiql' })
  t.same(pageUrls({ address: '0.0.0.0', family: 'IPv4', port: 8080 }, false), { dashboard: 'http://127.0.0.1:8080/dashboard', portal: 'http://127.0.0.1:8080/portal' })
  t.equal(pageUrls({ address: '::', family: 'IPv6', port: 1 }, false)?.portal, 'http://[::1]:1/portal')
  t.equal(pageUrls({ address: '::1', family: 'IPv6', port: 1 }, false)?.portal, 'http://[::1]:1/portal')
  t.equal(pageUrls(null, true), undefined)
})

t.test('npm start\'s log names /dashboard and /portal on the port actually bound', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'serials-first-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // API_PORT=0: the kernel picks the port, so only the bound address can be right in the log.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', DATA_DIR: dir, DATABASE_URL: 'memory://', SIGNING_ALGORITHM: 'ED25519', API_PORT: '0', LOG_LEVEL: 'info' }
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const line = await new Promise<Record<string, string>>((resolve, reject) => {
    let buffered = ''
    const timer = setTimeout(() => reject(new Error(`no start-up URLs within 60 s: ${stderr}`)), 60_000)
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      for (const text of buffered.split('\n')) {
        if (!text.includes('"dashboard"')) continue
        clearTimeout(timer)
        resolve(JSON.parse(text))
      }
    })
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${stderr}`)))
  })
  t.match(line.msg, /^Operator console at http:\/\/127\.0\.0\.1:\d+\/dashboard, customer portal at http:\/\/127\.0\.0\.1:\d+\/portal, GraphiQL at /)
  const port = Number(new URL(line.dashboard!).port)
  t.not(port, 0, 'the port bound, not the one asked for')
  t.equal(line.portal, `http://127.0.0.1:${port}/portal`)
  const front = await fetch(`http://127.0.0.1:${port}/`, { headers: { accept: CHROME_ACCEPT }, redirect: 'manual' })
  t.equal(front.status, 302)
  t.equal(front.headers.get('location'), '/dashboard')
  const dashboard = await fetch(line.dashboard!)
  // 200 with a build of the pages, 503 (run `npm run build`) without: either way the route exists.
  t.ok([200, 503].includes(dashboard.status), `dashboard answers ${dashboard.status}`)
  child.kill('SIGTERM')
  await once(child, 'exit')
})
