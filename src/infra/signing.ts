// Signs license certificates and nonce answers: RSASSA-PSS (SHA-256, 32-byte salt) on RSA-4096,
// or Ed25519. The key id is derived from the public key so rotated keys are told apart. The bytes
// signed are the SDK's own (packages/client/src/verify.ts: canonicalJson, answerSigningInput), so
// the service and the verifier cannot disagree on them.
import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto'

export type SigningAlgorithm = 'RSA-PSS-4096' | 'ED25519'

export interface ISigner {
  readonly algorithm: SigningAlgorithm
  readonly keyId: string
  readonly publicKeyPem: string
  readonly publicKeyJwk: Record<string, unknown>
  sign (data: Uint8Array | string): Buffer
}

export function createSigner (algorithm: SigningAlgorithm, privateKeyPem: string, publicKeyPem: string): ISigner {
  const privateKey: KeyObject = createPrivateKey(privateKeyPem)
  const publicKey = createPublicKey(publicKeyPem)
  const expected = algorithm === 'ED25519' ? 'ed25519' : 'rsa'
  const actual = privateKey.asymmetricKeyType === 'rsa-pss' ? 'rsa' : privateKey.asymmetricKeyType
  if (actual !== expected) throw new Error(`signing key is ${privateKey.asymmetricKeyType}, but SIGNING_ALGORITHM is ${algorithm}`)
  const der = publicKey.export({ type: 'spki', format: 'der' })
  const keyId = createHash('sha256').update(der).digest('hex').slice(0, 16)
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: keyId, alg: algorithm === 'ED25519' ? 'EdDSA' : 'PS256', use: 'sig' }
  return {
    algorithm,
    keyId,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKeyJwk: jwk,
    sign (data) {
      const buffer = typeof data === 'string' ? Buffer.from(data) : data
      return algorithm === 'ED25519'
        ? sign(null, buffer, privateKey)
        : sign('sha256', buffer, { key: privateKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 })
    }
  }
}
