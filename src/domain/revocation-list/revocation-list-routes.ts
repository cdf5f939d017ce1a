// GET /revocations (under API_PREFIX): the signed revocation list, public like the public key.
// Cached by clients with ETag / If-None-Match; the default per-IP rate limit applies.
import type { FastifyPluginAsync } from 'fastify'

const listResponse = {
  200: {
    type: 'object',
    required: ['list', 'algorithm', 'keyId', 'issuedAt', 'expiresAt'],
    properties: {
      list: { type: 'string' },
      algorithm: { type: 'string' },
      keyId: { type: 'string' },
      issuedAt: { type: 'string', format: 'date-time' },
      expiresAt: { type: 'string', format: 'date-time' }
    }
  },
  // If-None-Match matched: no body.
  304: { type: 'null' }
} as const

function matches (header: string | undefined, etag: string): boolean {
  if (!header) return false
  return header.split(',').some((tag) => {
    const t = tag.trim()
    return t === '*' || t === etag || t === `W/${etag}`
  })
}

export const revocationListRoutes: FastifyPluginAsync = async (app) => {
  const service = app.deps.services.revocationList

  app.get('/revocations', { schema: { response: listResponse }, helmet: false }, async (request, reply) => {
    const current = await service.current()
    void reply.header('etag', current.etag)
    // Clients may reuse a list for a short while, but must revalidate: revocations should spread fast.
    void reply.header('cache-control', 'public, max-age=60, must-revalidate')
    if (matches(request.headers['if-none-match'], current.etag)) return reply.status(304).send()
    const { etag: _etag, ...body } = current
    return body
  })
}
