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
import { ContractError } from '../kernel/errors.ts'

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

export interface WebRoutesOptions {
  /** The built pages (tests point it elsewhere); default WEB_DIR. */
  dir?: string
}

export default fp(async (app: FastifyInstance, options: WebRoutesOptions) => {
  const dir = options.dir ?? WEB_DIR
  for (const [name, file] of Object.entries(PAGES)) {
    app.get(`/${name}`, async (request, reply) => sendPage(request, reply, join(dir, file)))
    app.get(`/${name}/`, async (_request, reply) => reply.redirect(`/${name}`, 301))
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
