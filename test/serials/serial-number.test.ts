import t from 'tap'
import { checkCharacter, formatSerialNumber, generateSerialNumber, maskSerialNumber, normaliseSerialNumber } from '../../src/domain/serials/serial-number.ts'

t.test('generated numbers: 25 Crockford characters that pass their own check', async (t) => {
  const seen = new Set<string>()
  for (let i = 0; i < 2000; i++) {
    const n = generateSerialNumber()
    t.match(n, /^[0-9A-HJKMNP-TV-Z]{25}$/)
    t.equal(normaliseSerialNumber(n), n)
    seen.add(n)
  }
  t.equal(seen.size, 2000, 'no repeats')
})

t.test('normalisation: case, spaces, dashes, O→0, I/L→1', async (t) => {
  const n = generateSerialNumber()
  const formatted = formatSerialNumber(n)
  t.match(formatted, /^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$/)
  t.equal(normaliseSerialNumber(formatted.toLowerCase()), n)
  t.equal(normaliseSerialNumber(` ${formatted.replace(/-/g, ' ')} `), n)
  const body = '0101010101010101010101IL'
  const number = body.replace(/[IL]/g, '1') + checkCharacter(body.replace(/[IL]/g, '1'))
  const typed = number.replace(/0/g, 'O').slice(0, 22) + 'IL' + number.slice(24)
  t.equal(normaliseSerialNumber(typed), number, 'O reads as 0, I and L as 1')
})

t.test('a single changed character or a swap of neighbours fails the check', async (t) => {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
  let caught = 0
  let tried = 0
  for (let i = 0; i < 200; i++) {
    const n = generateSerialNumber()
    const pos = i % 25
    const replacement = alphabet[(alphabet.indexOf(n[pos]!) + 1 + (i % 31)) % 32]!
    const typo = n.slice(0, pos) + replacement + n.slice(pos + 1)
    tried++
    if (normaliseSerialNumber(typo) === undefined) caught++
  }
  t.equal(caught, tried, 'every single-character substitution is caught')
})

t.test('rejects wrong length, foreign characters and non-strings', async (t) => {
  const n = generateSerialNumber()
  t.equal(normaliseSerialNumber(n.slice(0, 24)), undefined)
  t.equal(normaliseSerialNumber(n + '0'), undefined)
  t.equal(normaliseSerialNumber(n.slice(0, 24) + 'U'), undefined, 'U is not in the alphabet')
  t.equal(normaliseSerialNumber('x'.repeat(1000)), undefined)
  t.equal(normaliseSerialNumber(42 as unknown as string), undefined)
})

t.test('masking keeps only the last group', async (t) => {
  t.equal(maskSerialNumber('J3VPA'), '*****-*****-*****-*****-J3VPA')
})
