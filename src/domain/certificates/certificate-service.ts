// Offline licenses: a signed certificate binding a serial to one device until `exp`.
import { z } from 'zod'
import type { Deps } from '../deps.ts'
import { NotFoundError, ContractError, ValidationError } from '../../kernel/errors.ts'
import { parseInput } from '../../kernel/input.ts'
import { deviceIdSchema } from '../serials/serial-state.ts'
import type { ValidationService } from '../validation/validation-service.ts'
import { capTtlDays } from '../policies/lease-rules.ts'
import type { LicensePayload } from './verify-license-certificate.ts'

const issueInput = z.object({
  serialNumber: z.string().max(64),
  deviceId: deviceIdSchema,
  ttlDays: z.number().int().min(1).max(365).optional().nullable()
})

export interface LicenseCertificate { certificate: string, algorithm: string, keyId: string, expiresAt: Date }

export const DEFAULT_TTL_DAYS = 30

export function createCertificateService (deps: Deps & { validation: Pick<ValidationService, 'validate'> }) {
  const { signer, clock } = deps
  return {
    async issue (input: unknown): Promise<LicenseCertificate> {
      const data = parseInput(issueInput, input)
      const { result, serial, policy } = await deps.validation.validate({ serialNumber: data.serialNumber, deviceId: data.deviceId })
      if (result.code === 'INVALID_FORMAT') throw new ValidationError('Validation failed', [{ field: 'serialNumber', message: 'Invalid format' }])
      if (result.code === 'NOT_FOUND' || !serial) throw new NotFoundError('serial not found')
      if (!result.valid) throw new ContractError('FORBIDDEN', `certificate refused: serial is ${result.code} for this device`)
      const now = clock().getTime()
      // The policy's offlineTtlDays caps how long a device may run without asking again.
      let exp = now + capTtlDays(data.ttlDays ?? DEFAULT_TTL_DAYS, policy?.offlineTtlDays ?? null) * 86_400_000
      if (serial.expiresAt !== null) exp = Math.min(exp, serial.expiresAt)
      // ent / pol: entitlements and policy id, so an app can unlock features offline too.
      const payload: LicensePayload & { ent: string[], pol: string | null } = {
        v: 1,
        kid: signer.keyId,
        alg: signer.algorithm,
        sub: serial.id,
        client: serial.clientNumber,
        device: data.deviceId,
        maxDevices: serial.maxDevices,
        demo: serial.isDemo,
        iat: Math.floor(now / 1000),
        exp: Math.floor(exp / 1000),
        ent: policy?.entitlements ?? [],
        pol: policy?.id ?? null
      }
      const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url')
      const signature = signer.sign(Buffer.from(encoded, 'ascii')).toString('base64url')
      return { certificate: `${encoded}.${signature}`, algorithm: signer.algorithm, keyId: signer.keyId, expiresAt: new Date(payload.exp * 1000) }
    },

    publicKey () {
      return { algorithm: signer.algorithm, keyId: signer.keyId, pem: signer.publicKeyPem, jwk: signer.publicKeyJwk }
    }
  }
}

export type CertificateService = ReturnType<typeof createCertificateService>
