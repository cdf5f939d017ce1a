// AES-256-GCM keyring and HMAC lookup hashes.
// Ciphertext format: v1.<keyId>.<iv b64url>.<tag b64url>.<data b64url>; keyId = first 8 hex of
// SHA-256(key), so a value written with an older key stays readable while ENCRYPTION_KEYS_PREVIOUS
// lists it.
import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { randomBytesPooled } from '../kernel/random.ts'

export interface IKeyring {
  readonly currentKeyId: string
  encrypt (plaintext: string): string
  decrypt (ciphertext: string): string
  /** Key id a ciphertext was written with; used by key rotation to skip what is current. */
  keyIdOf (ciphertext: string): string
}

export function keyIdOf (key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8)
}

export function createKeyring (current: Buffer, previous: Buffer[] = []): IKeyring {
  const keys = new Map<string, Buffer>()
  for (const key of [current, ...previous]) keys.set(keyIdOf(key), key)
  const currentKeyId = keyIdOf(current)
  return {
    currentKeyId,
    encrypt (plaintext) {
      const iv = randomBytesPooled(12)
      const cipher = createCipheriv('aes-256-gcm', current, iv)
      const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      return ['v1', currentKeyId, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join('.')
    },
    decrypt (ciphertext) {
      const [version, keyId, iv, tag, data] = ciphertext.split('.')
      if (version !== 'v1' || !keyId || !iv || !tag || data === undefined) throw new Error('unrecognised ciphertext format')
      const key = keys.get(keyId)
      if (!key) throw new Error(`ciphertext key ${keyId} is not in the keyring`)
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
      decipher.setAuthTag(Buffer.from(tag, 'base64url'))
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8')
    },
    keyIdOf (ciphertext) {
      return ciphertext.split('.')[1] ?? ''
    }
  }
}

/** HMAC-SHA256 with the pepper, hex: how serial numbers and API keys are looked up. */
export function lookupHash (pepper: Buffer, value: string): string {
  return createHmac('sha256', pepper).update(value).digest('hex')
}

export function sha256Hex (value: string | Buffer): string {
  return createHash('sha256').update(value).digest('hex')
}

/** Constant-time string comparison (lengths are compared first, which reveals only the length). */
export function safeEqual (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
