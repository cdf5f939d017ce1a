// base64url without padding (RFC 4648 §5), strict: exactly one string decodes to given bytes.
// Certificates, revocation lists and signatures use this form only; `=`, `+`, `/`, whitespace and
// non-zero trailing bits are refused, so a token cannot be re-encoded into a second valid form.

const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const STD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

function table (alphabet: string): Int16Array {
  const t = new Int16Array(128).fill(-1)
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i
  return t
}
const URL_TABLE = table(URL_ALPHABET)
const STD_TABLE = table(STD_ALPHABET)

function decodeWith (text: string, lookup: Int16Array): Uint8Array | null {
  const n = text.length
  // A lone trailing character carries only 6 bits: never a whole byte.
  if (n % 4 === 1) return null
  const out = new Uint8Array(Math.floor(n * 3 / 4))
  let buffer = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < n; i++) {
    const code = text.charCodeAt(i)
    const value = code < 128 ? lookup[code]! : -1
    if (value < 0) return null
    buffer = (buffer << 6) | value
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (buffer >> bits) & 0xff
    }
    buffer &= 0xff
  }
  // Canonical form: the bits left over after the last whole byte are zero.
  if (bits > 0 && (buffer & ((1 << bits) - 1)) !== 0) return null
  return out
}

/** Decodes canonical base64url without padding; null for anything else. */
export function decodeBase64Url (text: string): Uint8Array | null {
  if (typeof text !== 'string') return null
  return decodeWith(text, URL_TABLE)
}

export function encodeBase64Url (bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += URL_ALPHABET[v >> 18]! + URL_ALPHABET[(v >> 12) & 63]! + URL_ALPHABET[(v >> 6) & 63]! + URL_ALPHABET[v & 63]!
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const v = bytes[i]! << 16
    out += URL_ALPHABET[v >> 18]! + URL_ALPHABET[(v >> 12) & 63]!
  } else if (rest === 2) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += URL_ALPHABET[v >> 18]! + URL_ALPHABET[(v >> 12) & 63]! + URL_ALPHABET[(v >> 6) & 63]!
  }
  return out
}

/** Standard base64 as found in PEM bodies (padding and line breaks allowed); null when invalid. */
export function decodeBase64Pem (text: string): Uint8Array | null {
  const compact = text.replace(/\s+/g, '')
  const stripped = compact.replace(/={1,2}$/, '')
  if (compact.length % 4 !== 0) return null
  return decodeWith(stripped, STD_TABLE)
}
