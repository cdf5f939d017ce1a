// GET /revocations (under API_PREFIX): the signed revocation list, public like the public key.
// Cached by clients with ETag / If-None-Match; the default per-IP rate limit applies.
import type { FastifyPluginAsync } from 'fastify'
import { ANY_ROUTE_ERRORS, errorResponses } from '../../kernel/error-schema.ts'

// `required`: always sent (the OpenAPI header's field; see http/openapi-routes.ts).
const cacheHeaders = {
  ETag: { type: 'string', description: 'Strong validator of this list: send it back as If-None-Match.', required: true },
  'Cache-Control': { type: 'string', description: '`public, max-age=60, must-revalidate`.', required: true }
} as const

const listResponse = {
  200: {
    description: 'The current list, signed with the certificate key (GET /api/v1/public-key).',
    headers: cacheHeaders,
    type: 'object',
    required: ['list', 'algorithm', 'keyId', 'issuedAt', 'expiresAt'],
    properties: {
      list: { type: 'string', description: 'base64url(payload).base64url(signature), like a certificate.' },
      algorithm: { type: 'string', enum: ['RSA-PSS-4096', 'ED25519'] },
      keyId: { type: 'string' },
      issuedAt: { type: 'string', format: 'date-time' },
      expiresAt: { type: 'string', format: 'date-time', description: 'Refetch before then.' }
    }
  },
  // If-None-Match matched: no body.
  304: { description: 'Not modified: the list named by If-None-Match is still current (no body).', headers: cacheHeaders, type: 'null' },
  ...errorResponses(ANY_ROUTE_ERRORS)
} as const

const listSchema = {
  operationId: 'getRevocationList',
  tags: ['Certificates'],
  summary: 'The signed revocation list',
  description: 'Serials revoked before their certificates expire, for apps that check offline. Cache it with ETag / If-None-Match.',
  headers: {
    type: 'object',
    properties: {
      'If-None-Match': { type: 'string', description: 'ETags of lists held (comma-separated, `W/` accepted, or `*`): 304 when one is current.' }
    }
  },
  response: listResponse
}

function matches (header: string | undefined, etag: string): boolean {
  if (!header) return false
  return header.split(',').some((tag) => {
    const t = tag.trim()
    return t === '*' || t === etag || t === `W/${etag}`
  })
}

export const revocationListRoutes: FastifyPluginAsync = async (app) => {
  const service = app.deps.services.revocationList

  app.get('/revocations', { schema: listSchema, helmet: false }, async (request, reply) => {
    const current = await service.current()
    void reply.header('etag', current.etag)
    // Clients may reuse a list for a short while, but must revalidate: revocations should spread fast.
    void reply.header('cache-control', 'public, max-age=60, must-revalidate')
    if (matches(request.headers['if-none-match'], current.etag)) return reply.status(304).send()
    const { etag: _etag, ...body } = current
    return body
  })
}
