import { builder } from '../graphql/builder.ts'
import type { LicenseCertificate } from './certificate-service.ts'

const LicenseCertificateRef = builder.objectRef<LicenseCertificate>('LicenseCertificate').implement({
  fields: (t) => ({
    certificate: t.exposeString('certificate', { description: 'base64url(payload).base64url(signature)' }),
    algorithm: t.exposeString('algorithm'),
    keyId: t.exposeString('keyId'),
    expiresAt: t.expose('expiresAt', { type: 'DateTime' })
  })
})

const PublicKeyRef = builder.objectRef<{ algorithm: string, keyId: string, pem: string, jwk: Record<string, unknown> }>('PublicKey').implement({
  fields: (t) => ({
    algorithm: t.exposeString('algorithm'),
    keyId: t.exposeString('keyId'),
    pem: t.exposeString('pem'),
    jwk: t.expose('jwk', { type: 'JSON' })
  })
})

const IssueLicenseCertificateInput = builder.inputType('IssueLicenseCertificateInput', {
  fields: (t) => ({
    serialNumber: t.string({ required: true }),
    deviceId: t.string({ required: true }),
    ttlDays: t.int({ description: '1 to 365 (default 30); never beyond the serial\'s expiry' })
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
  args: { input: t.arg({ type: IssueLicenseCertificateInput, required: true }) },
  resolve: (_root, { input }, ctx) => ctx.services.certificates.issue(input)
}))
