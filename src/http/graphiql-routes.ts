// GraphiQL served from the service's own assets: air-gapped vendors are common in licensing, and
// mercurius's built-in page pulls React and GraphiQL from a CDN (a blank page offline). The files
// come from the installed npm packages (graphiql 3 UMD, React 18 UMD), read once on first use.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import fp from 'fastify-plugin'
import { ANY_ROUTE_ERRORS, errorResponses } from '../kernel/error-schema.ts'

const require = createRequire(import.meta.url)
const packageDir = (name: string) => dirname(require.resolve(`${name}/package.json`))

/** Every asset the page loads, by the name it is served under: nothing else is reachable. */
const ASSETS: Record<string, { file: () => string, type: string }> = {
  'react.production.min.js': { file: () => join(packageDir('react'), 'umd/react.production.min.js'), type: 'text/javascript; charset=utf-8' },
  'react-dom.production.min.js': { file: () => join(packageDir('react-dom'), 'umd/react-dom.production.min.js'), type: 'text/javascript; charset=utf-8' },
  'graphiql.min.js': { file: () => join(packageDir('graphiql'), 'graphiql.min.js'), type: 'text/javascript; charset=utf-8' },
  'graphiql.min.css': { file: () => join(packageDir('graphiql'), 'graphiql.min.css'), type: 'text/css; charset=utf-8' }
}

/**
 * Only the service itself; no inline script (the start-up script below is a file of its own).
 * `data:` for fonts and images only: the GraphiQL stylesheet embeds its fonts as data URLs, part
 * of our own asset, so no request leaves the page (with `font-src 'self'` Chromium refuses them
 * and GraphiQL falls back to system fonts).
 */
export const GRAPHIQL_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'"
].join('; ')

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Serials GraphiQL</title>
  <link rel="stylesheet" href="/graphiql/assets/graphiql.min.css">
  <link rel="stylesheet" href="/graphiql/assets/page.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="/graphiql/assets/react.production.min.js"></script>
  <script src="/graphiql/assets/react-dom.production.min.js"></script>
  <script src="/graphiql/assets/graphiql.min.js"></script>
  <script src="/graphiql/assets/start.js"></script>
</body>
</html>
`

const PAGE_CSS = 'html, body, #graphiql { height: 100%; margin: 0; }\n'

// Same origin for queries and subscriptions; credentials go in the Headers tab
// ({"authorization": "Bearer srl_…"}), which lives in this page's memory only: local storage is
// shared with every page of this origin (the public portal among them) and outlives the session.
// GraphiQL keeps headers in three places (the Headers tab, each tab's state, the query history,
// the last even with shouldPersistHeaders off), so it gets a storage that never writes a `headers`
// value: queries, variables, tabs and history are still kept, their headers are not. Whatever an
// older release stored is scrubbed the same way at start.
const START = `/* global React, ReactDOM, GraphiQL */
(function () {
  var OWN = 'graphiql:'
  // The editors' own text is the user's, not GraphiQL's structure: never rewritten.
  var VERBATIM = { 'graphiql:query': true, 'graphiql:variables': true }
  function scrub (value) {
    if (Array.isArray(value)) return value.map(scrub)
    if (!value || typeof value !== 'object') return value
    var out = {}
    Object.keys(value).forEach(function (k) { out[k] = k === 'headers' ? null : scrub(value[k]) })
    return out
  }
  function ownKeys () {
    var keys = []
    for (var i = 0; i < localStorage.length; i++) { var k = localStorage.key(i); if (k && k.indexOf(OWN) === 0) keys.push(k) }
    return keys
  }
  var storage = {
    getItem: function (key) { return localStorage.getItem(key) },
    setItem: function (key, value) {
      if (key === 'graphiql:headers') { localStorage.removeItem(key); return }
      var text = value
      if (!VERBATIM[key]) { try { text = JSON.stringify(scrub(JSON.parse(value))) } catch (e) { /* not JSON: no headers inside */ } }
      localStorage.setItem(key, text)
    },
    removeItem: function (key) { localStorage.removeItem(key) },
    clear: function () { ownKeys().forEach(function (k) { localStorage.removeItem(k) }) },
    get length () { return ownKeys().length }
  }
  try {
    ownKeys().forEach(function (k) { storage.setItem(k, localStorage.getItem(k)) })
  } catch (e) { /* storage unavailable: nothing was kept */ }
  var ws = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/graphql'
  var fetcher = GraphiQL.createFetcher({ url: location.origin + '/graphql', subscriptionUrl: ws })
  var root = ReactDOM.createRoot(document.getElementById('graphiql'))
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    storage: storage,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultHeaders: '{\\n  "authorization": "Bearer <API key>"\\n}',
    defaultQuery: '{\\n  me { role clientId }\\n}\\n'
  }))
})()
`

const pageSchema = {
  operationId: 'graphiqlPage',
  tags: ['Web pages'],
  summary: 'GraphiQL',
  description: 'An HTML page for exploring POST /graphql, served from the service (no CDN). Off in production unless GRAPHIQL=true.',
  response: { 200: { description: 'The page.', content: { 'text/html': { schema: { type: 'string' } } } }, ...errorResponses(ANY_ROUTE_ERRORS) }
}

const cache = new Map<string, Buffer>()

async function asset (name: string): Promise<Buffer | undefined> {
  const entry = ASSETS[name]
  if (!entry) return undefined
  let body = cache.get(name)
  if (!body) {
    body = await readFile(entry.file())
    cache.set(name, body)
  }
  return body
}

export default fp(async (app) => {
  if (!app.deps.config.graphiql) return
  const page = (type: string, body: string | Buffer, maxAge = 0) => ({ type, body, maxAge })
  const fixed: Record<string, ReturnType<typeof page>> = {
    'page.css': page('text/css; charset=utf-8', PAGE_CSS),
    'start.js': page('text/javascript; charset=utf-8', START)
  }

  app.get('/graphiql', { schema: pageSchema }, async (_request, reply) => reply
    .header('content-security-policy', GRAPHIQL_CSP)
    .header('cache-control', 'no-cache')
    .type('text/html; charset=utf-8')
    .send(PAGE))

  app.get<{ Params: { name: string } }>('/graphiql/assets/:name', async (request, reply) => {
    const { name } = request.params
    const own = fixed[name]
    const body = own?.body ?? await asset(name)
    if (body === undefined) return reply.callNotFound()
    return reply
      .header('content-security-policy', GRAPHIQL_CSP)
      // The files change only with the installed packages, i.e. with a new release of the service.
      .header('cache-control', own ? 'no-cache' : 'public, max-age=3600')
      .header('x-content-type-options', 'nosniff')
      .type(own?.type ?? ASSETS[name]!.type)
      .send(body)
  })
}, { name: 'graphiql-routes', dependencies: ['deps'] })
