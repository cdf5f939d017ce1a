// GET {prefix}/public-key: the keys an app pins to verify certificates and signed answers.
import type { FastifyPluginAsync } from 'fastify'
import { ANY_ROUTE_ERRORS, errorResponses } from '../../kernel/error-schema.ts'

const publicKeySchema = {
  operationId: 'getPublicKey',
  tags: ['Certificates'],
  summary: 'The certificate key',
  description: 'The public half of the key that signs licence certificates, signed validation answers and the revocation list. ' +
    'Pin it in the app (PEM or JWK).',
  response: {
    200: {
      description: 'The key, in two encodings.',
      type: 'object',
      required: ['algorithm', 'keyId', 'pem', 'jwk'],
      properties: {
        algorithm: { type: 'string', enum: ['RSA-PSS-4096', 'ED25519'] },
        keyId: { type: 'string', description: 'Names the key in certificates (`kid`), so a rotation is seen.' },
        pem: { type: 'string', description: 'SPKI PEM.' },
        jwk: { type: 'object', required: ['kty'], additionalProperties: true, properties: { kty: { type: 'string' } }, description: 'The same key as a JSON Web Key.' }
      }
    },
    ...errorResponses(ANY_ROUTE_ERRORS)
  }
}

export const certificateRoutes: FastifyPluginAsync = async (app) => {
  const { services } = app.deps
  app.get('/public-key', { schema: publicKeySchema }, async () => services.certificates.publicKey())
}
