// Serial number value object: 24 Crockford base32 characters of randomness (120 bits) plus a
// Luhn mod 32 check character, shown as five groups of five: 7KQ2M-X9Q4T-0BHRW-5N8CF-J3VPA.
import { ALPHABET, encodeBase32 } from '../../kernel/ids.ts'
import { randomBytesPooled } from '../../kernel/random.ts'

const VALUE = new Map([...ALPHABET].map((c, i) => [c, i]))
const N = 32

function luhnSum (chars: string, startFactor: 1 | 2): number {
  let factor = startFactor
  let sum = 0
  for (let i = chars.length - 1; i >= 0; i--) {
    let addend = factor * VALUE.get(chars[i]!)!
    factor = factor === 2 ? 1 : 2
    addend = Math.floor(addend / N) + (addend % N)
    sum += addend
  }
  return sum
}

export function checkCharacter (body: string): string {
  return ALPHABET[(N - (luhnSum(body, 2) % N)) % N]!
}

/** A fresh number, normalised (no dashes). */
export function generateSerialNumber (): string {
  // 120 bits = 24 × 5: the encoding has no padding character.
  const body = encodeBase32(randomBytesPooled(15))
  return body + checkCharacter(body)
}

/**
 * Case-insensitive; spaces and dashes ignored; O→0, I and L→1. Returns undefined when the input
 * is not 25 valid characters with a correct check character, so no database work is done.
 */
export function normaliseSerialNumber (input: string): string | undefined {
  if (typeof input !== 'string' || input.length > 64) return undefined
  const cleaned = input.toUpperCase().replace(/[\s-]/g, '').replace(/O/g, '0').replace(/[IL]/g, '1')
  if (cleaned.length !== 25) return undefined
  for (const c of cleaned) if (!VALUE.has(c)) return undefined
  return luhnSum(cleaned, 1) % N === 0 ? cleaned : undefined
}

export function formatSerialNumber (normalised: string): string {
  return normalised.match(/.{1,5}/g)!.join('-')
}

export function maskSerialNumber (tail: string): string {
  return `*****-*****-*****-*****-${tail}`
}
