// The operator console (/dashboard) and the customer portal (/portal): static pages built by Vite
// into dist/web (`npm run build`), served from the service itself so that they work offline.
// Hashed assets are immutable; the HTML is revalidated so a new release is picked up at once.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ContractError, NotFoundError } from '../kernel/errors.ts'
import { ANY_ROUTE_ERRORS, ensureErrorBodySchema, errorResponses } from '../kernel/error-schema.ts'

/** dist/web: two folders up from src/web in the source tree, one from dist/src/web when compiled. */
export const WEB_DIR = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/web/' : '../../web/', import.meta.url))
const PAGES = { dashboard: 'dashboard/index.html', portal: 'portal/index.html' } as const

/**
 * The built pages are missing: an operator's setup step, not a fault of the request. The
 * contract's body (code INTERNAL, the closed set has no better one) with 503 like /health/ready.
 */
function notBuilt (reply: FastifyReply): FastifyReply {
  const body = new ContractError('INTERNAL', 'The console and portal are not built: run `npm run build`').toBody()
  return reply.code(503).header('cache-control', 'no-store').send({ ...body, statusCode: 503 })
}

/** A Host header fit to appear in the policy (anything else drops the ws: source, never widens it). */
const HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/

/**
 * Only the service itself, no inline script or style. `connect-src` names the same host's
 * ws:/wss: for the subscription explicitly: older browsers do not count them as 'self'.
 */
export function webCsp (host: string | undefined): string {
  const sockets = host && HOST.test(host) ? ` ws://${host} wss://${host}` : ''
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    `connect-src 'self'${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'"
  ].join('; ')
}

async function sendPage (request: FastifyRequest, reply: FastifyReply, file: string): Promise<FastifyReply> {
  let html: Buffer
  try {
    html = await readFile(file)
  } catch {
    return notBuilt(reply)
  }
  return reply
    .header('content-security-policy', webCsp(request.headers.host))
    .header('cache-control', 'no-cache')
    .header('referrer-policy', 'no-referrer')
    .type('text/html; charset=utf-8')
    .send(html)
}

/**
 * Whether a request to `/` comes from a browser: `text/html` acceptable (q > 0) and liked at
 * least as much as an explicit `application/json`. A bare wildcard (curl, fetch, SDKs) is not a page.
 */
export function wantsPage (accept: string | undefined): boolean {
  if (!accept) return false
  const quality = (type: string): number => {
    let best = 0
    for (const range of accept.split(',')) {
      const [name, ...params] = range.split(';').map((part) => part.trim().toLowerCase())
      if (name !== type) continue
      const q = params.find((p) => p.startsWith('q='))
      best = Math.max(best, q ? Number(q.slice(2)) || 0 : 1)
    }
    return best
  }
  const html = quality('text/html')
  return html > 0 && html >= quality('application/json')
}

/** The URLs the start-up log names, on the address the server actually listens on. */
export function pageUrls (address: string | { address: string, family: string, port: number } | null, graphiql: boolean): { dashboard: string, portal: string, graphiql?: string } | undefined {
  if (!address || typeof address === 'string') return undefined
  // A wildcard address is not one a browser can open: name this machine's loopback instead.
  const host = address.address === '0.0.0.0'
    ? '127.0.0.1'
    : address.address === '::' ? '[::1]' : address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address
  const base = `http://${host}:${address.port}`
  return { dashboard: `${base}/dashboard`, portal: `${base}/portal`, ...(graphiql ? { graphiql: `${base}/graphiql` } : {}) }
}

/** The pages' route schemas, for the OpenAPI description (a page is HTML: only error bodies go through them). */
const html = { 'text/html': { schema: { type: 'string' } } }
const pageErrors = errorResponses(ANY_ROUTE_ERRORS, {
  503: 'INTERNAL with status 503: the console and portal are not built (`npm run build`); or SERVICE_UNAVAILABLE (with Retry-After): a credential was sent and PostgreSQL does not answer.'
})
const TITLES: Record<keyof typeof PAGES, string> = { dashboard: 'The operator console', portal: 'The customer portal' }
const pageSchema = (name: keyof typeof PAGES) => ({
  operationId: `${name}Page`,
  tags: ['Web pages'],
  summary: TITLES[name],
  description: 'An HTML page for browsers (scripts and styles under /web/assets/, which are not described here); it calls POST /graphql.',
  response: { 200: { description: 'The page.', content: html }, ...pageErrors }
})
const slashSchema = (name: keyof typeof PAGES) => ({
  operationId: `${name}Slash`,
  tags: ['Web pages'],
  summary: `Redirects to /${name}`,
  response: {
    301: { description: `Moved permanently to /${name}.`, headers: { Location: { type: 'string', enum: [`/${name}`], required: true } }, type: 'null' },
    ...errorResponses(ANY_ROUTE_ERRORS)
  }
})
const rootSchema = {
  operationId: 'root',
  tags: ['Web pages'],
  summary: 'Nothing here: points to the entry points',
  description: 'A browser (Accept prefers text/html) is sent to the operator console; any other client gets NOT_FOUND naming GraphQL, the REST prefix and the pages.',
  response: {
    302: { description: 'A browser: go to /dashboard.', headers: { Location: { type: 'string', enum: ['/dashboard'], required: true } }, type: 'null' },
    ...errorResponses([404, ...ANY_ROUTE_ERRORS], { 404: 'NOT_FOUND: an API client; the message names the entry points.' })
  }
}

export interface WebRoutesOptions {
  /** The built pages (tests point it elsewhere); default WEB_DIR. */
  dir?: string
  /** API_PREFIX, named in the answer to an API client at `/`. */
  apiPrefix?: string
}

export default fp(async (app: FastifyInstance, options: WebRoutesOptions) => {
  const dir = options.dir ?? WEB_DIR
  ensureErrorBodySchema(app)
  // `/` has nothing of its own: a browser goes to the console; an API client gets the contract's
  // NOT_FOUND naming the entry points (a 200 here would invite depending on an undocumented index).
  app.get('/', { schema: rootSchema }, async (request, reply) => {
    void reply.header('vary', 'accept')
    if (wantsPage(request.headers.accept)) return reply.redirect('/dashboard', 302)
    const error = new NotFoundError(`nothing at ${request.method} /: GraphQL is POST /graphql, the REST shim is under ${options.apiPrefix ?? '/api/v1'}, the operator console is /dashboard, the customer portal /portal`)
    return reply.code(404).send(error.toBody())
  })
  for (const [name, file] of Object.entries(PAGES)) {
    app.get(`/${name}`, { schema: pageSchema(name as keyof typeof PAGES) }, async (request, reply) => sendPage(request, reply, join(dir, file)))
    app.get(`/${name}/`, { schema: slashSchema(name as keyof typeof PAGES) }, async (_request, reply) => reply.redirect(`/${name}`, 301))
  }

  // Encapsulated: @fastify/static's reply decorators stay out of the rest of the app.
  await app.register(async (scope) => {
    const assets = join(dir, 'assets')
    if (!existsSync(assets)) {
      scope.get('/web/assets/*', async (_request, reply) => notBuilt(reply))
      return
    }
    await scope.register(fastifyStatic, {
      root: assets,
      prefix: '/web/assets/',
      decorateReply: false,
      index: false,
      list: false,
      dotfiles: 'deny',
      // File names carry a content hash: a changed file is a new URL.
      immutable: true,
      maxAge: '365d'
    })
  })
}, { name: 'web-routes' })
