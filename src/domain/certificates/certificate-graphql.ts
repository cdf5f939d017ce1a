import { builder } from '../../graphql/builder.ts'
import { NodeRef } from '../../graphql/node.ts'
import type { LicenseCertificate } from './certificate-service.ts'

const LicenseCertificateRef = builder.objectRef<LicenseCertificate>('LicenseCertificate').implement({
  description: 'A signed license for one device, checked offline with the public key',
  fields: (t) => ({
    certificate: t.exposeString('certificate', { description: 'Compact form: base64url(payload).base64url(signature)' }),
    algorithm: t.exposeString('algorithm', { description: 'RSA-PSS-4096 or ED25519' }),
    keyId: t.exposeString('keyId', { description: 'The signing key (kid in the payload)' }),
    expiresAt: t.expose('expiresAt', { description: 'When the certificate expires (exp)', type: 'DateTime' })
  })
})

const PublicKeyRef = builder.objectRef<{ algorithm: string, keyId: string, pem: string, jwk: Record<string, unknown> }>('PublicKey').implement({
  description: 'The key that verifies license certificates, signed validation answers and revocation lists',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.id({ description: 'The keyId again, so that normalised caches can key the object; node(id) returns it', resolve: (k) => k.keyId }),
    algorithm: t.exposeString('algorithm', { description: 'RSA-PSS-4096 or ED25519' }),
    keyId: t.exposeString('keyId', { description: 'Key id: the first 16 hex digits of the SHA-256 of the DER public key' }),
    pem: t.exposeString('pem', { description: 'The public key in PEM (SPKI)' }),
    jwk: t.expose('jwk', { description: 'The public key as a JWK, with kid, alg and use', type: 'JSON' })
  })
})

const IssueLicenseCertificateInput = builder.inputType('IssueLicenseCertificateInput', {
  description: 'The serial and device to certify',
  fields: (t) => ({
    serialNumber: t.string({ description: 'The full serial number (the credential)', required: true }),
    deviceId: t.string({ description: 'The device the certificate is bound to', required: true }),
    ttlDays: t.int({ description: 'Lifetime in days: 1 to 365 (default 30); never beyond the serial\'s expiry' })
  })
})

builder.queryField('publicKey', (t) => t.field({
  type: PublicKeyRef,
  description: 'Public: the key that verifies certificates and signed answers',
  resolve: (_root, _args, ctx) => ctx.services.certificates.publicKey()
}))

builder.mutationField('issueLicenseCertificate', (t) => t.field({
  type: LicenseCertificateRef,
  description: 'Public: validates the serial for the device (taking a slot if free), then signs',
  args: { input: t.arg({ type: IssueLicenseCertificateInput, required: true, description: 'The serial number, device and lifetime' }) },
  resolve: (_root, { input }, ctx) => ctx.services.certificates.issue(input)
}))
