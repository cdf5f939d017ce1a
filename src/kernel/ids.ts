// Prefixed, time-ordered ids (`ser_01JF…`): 48-bit millisecond time + 80 random bits in Crockford
// base32, so ordering by id is creation order and keyset pagination needs no second column.
import { randomInto } from './random.ts'

export type IdPrefix = 'cli' | 'ser' | 'dev' | 'use' | 'key' | 'aud' | 'whk' | 'whd' | 'bat' | 'pol'

/** Crockford base32: no I, L, O, U (ids and serial numbers alike). */
export const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

export function encodeBase32 (bytes: Uint8Array): string {
  let out = ''
  let buffer = 0
  let bits = 0
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31]
      bits -= 5
    }
    buffer &= (1 << bits) - 1
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

let lastMs = 0
let counter = 0

export function newId (prefix: IdPrefix, now = Date.now()): string {
  // Within one millisecond the random part would not preserve order; a counter in the
  // first random bytes keeps ids made by this process strictly increasing.
  if (now === lastMs) counter++
  else { lastMs = now; counter = 0 }
  const bytes = Buffer.alloc(16)
  bytes.writeUIntBE(now, 0, 6)
  bytes.writeUInt16BE(counter & 0xffff, 6)
  randomInto(bytes, 8, 8)
  // 128 bits → 26 characters; the first character carries only 3 bits of time.
  return `${prefix}_${encodeBase32(bytes).slice(0, 26)}`
}

export const ID_PATTERN = /^[a-z]{3}_[0-9A-Z]{26}$/
