// Passphrase encryption of a whole export file (`export --passphrase-env VAR`) and the key of its
// MAC, node:crypto only.
//
// Layout: magic "SRLXENC1" (8 bytes) | scrypt salt (16) | AES-GCM IV (12) | key check (16) |
// AES-256-GCM ciphertext of the NDJSON text | GCM tag (16).
// Key = scrypt(passphrase, salt, N = 2^15, r = 8, p = 1, 32 bytes). The key check (the first 16
// bytes of HMAC-SHA256(key, a fixed label)) lets a wrong passphrase be refused before anything is
// read; the tag, checked at the end of the stream, covers the whole text (the import runs in one
// transaction, so nothing decrypted before a bad tag is kept).
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { open } from 'node:fs/promises'
import { Transform } from 'node:stream'

export const ENCRYPTED_EXPORT_MAGIC = Buffer.from('SRLXENC1')
const SALT = 16
const IV = 12
const CHECK = 16
const TAG = 16
const HEADER = ENCRYPTED_EXPORT_MAGIC.length + SALT + IV + CHECK
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }

/** A passphrase that does not open the file, or a damaged encrypted file. */
export class PassphraseError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PassphraseError'
  }
}

async function deriveKey (passphrase: string, salt: Buffer): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    scrypt(passphrase, salt, 32, SCRYPT, (error, key) => { if (error) reject(error); else resolve(key) })
  })
}

/** Length of the random salt of an export's MAC key (in the export's header). */
export const MAC_SALT_BYTES = 16
const MAC_LABEL = Buffer.from('serials-export mac v1\n')

/**
 * The key of an export's MAC (HMAC-SHA256 over its lines, see export-import.ts): scrypt of the
 * signing key or passphrase with the header's salt behind a label of its own, so it is never the
 * key that encrypts the file, even from the same passphrase.
 */
export async function deriveMacKey (secret: string, salt: Buffer): Promise<Buffer> {
  if (secret.length === 0) throw new PassphraseError('the signing key is empty')
  return await deriveKey(secret, Buffer.concat([MAC_LABEL, salt]))
}

function keyCheck (key: Buffer): Buffer {
  return createHmac('sha256', key).update('serials-export passphrase check v1').digest().subarray(0, CHECK)
}

/** A transform whose output is the encrypted file: header first, tag last. */
export async function encryptingStream (passphrase: string): Promise<Transform> {
  if (passphrase.length === 0) throw new PassphraseError('the passphrase is empty')
  const salt = randomBytes(SALT)
  const iv = randomBytes(IV)
  const key = await deriveKey(passphrase, salt)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  let headerSent = false
  const header = () => {
    if (headerSent) return Buffer.alloc(0)
    headerSent = true
    return Buffer.concat([ENCRYPTED_EXPORT_MAGIC, salt, iv, keyCheck(key)])
  }
  return new Transform({
    transform (chunk: Buffer, _encoding, callback) {
      callback(null, Buffer.concat([header(), cipher.update(chunk)]))
    },
    flush (callback) {
      callback(null, Buffer.concat([header(), cipher.final(), cipher.getAuthTag()]))
    }
  })
}

/** Reads the header of an encrypted export and derives its key; a wrong passphrase is refused here. */
export async function readEncryptedHeader (file: string, passphrase: string): Promise<{ key: Buffer, iv: Buffer, headerLength: number }> {
  const handle = await open(file, 'r')
  const header = Buffer.alloc(HEADER)
  try {
    const { bytesRead } = await handle.read(header, 0, HEADER, 0)
    if (bytesRead < HEADER) throw new PassphraseError('the encrypted export is truncated')
  } finally {
    await handle.close()
  }
  let offset = ENCRYPTED_EXPORT_MAGIC.length
  const salt = header.subarray(offset, offset += SALT)
  const iv = header.subarray(offset, offset += IV)
  const check = header.subarray(offset, offset += CHECK)
  const key = await deriveKey(passphrase, salt)
  if (!timingSafeEqual(keyCheck(key), check)) throw new PassphraseError('the passphrase does not open this export')
  return { key, iv, headerLength: HEADER }
}

/** Decrypts what follows the header; fails at the end of the stream when the tag does not match. */
export function decryptingStream (key: Buffer, iv: Buffer): Transform {
  const decipher = createDecipheriv('aes-256-gcm', key, iv)
  // The last TAG bytes of the file are the tag, not ciphertext: always hold them back.
  let held = Buffer.alloc(0)
  return new Transform({
    transform (chunk: Buffer, _encoding, callback) {
      const all = Buffer.concat([held, chunk])
      const cut = Math.max(0, all.length - TAG)
      held = all.subarray(cut)
      callback(null, decipher.update(all.subarray(0, cut)))
    },
    flush (callback) {
      if (held.length < TAG) { callback(new PassphraseError('the encrypted export is truncated')); return }
      try {
        decipher.setAuthTag(held)
        callback(null, decipher.final())
      } catch {
        callback(new PassphraseError('the encrypted export does not authenticate: the file is damaged'))
      }
    }
  })
}
