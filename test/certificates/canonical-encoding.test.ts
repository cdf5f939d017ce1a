// Issue 12.17: a certificate has exactly one accepted spelling, canonical base64url without padding,
// in the SDK's verifier and in the service's own verifyLicenseCertificate (which shares its code).
import { generateKeyPairSync, sign } from 'node:crypto'
import t from 'tap'
import { importVerificationKey, verifyCompact } from '../../packages/client/src/verify.ts'
import { decodeBase64Url, encodeBase64Url } from '../../packages/client/src/base64url.ts'
import { verifyLicenseCertificate } from '../../src/domain/certificates/verify-license-certificate.ts'

const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()

function issue (device: string): string {
  const now = Math.floor(Date.now() / 1000)
  const head = Buffer.from(JSON.stringify({ v: 1, kid: 'k', alg: 'ED25519', sub: 'ser_1', client: 'ACME', device, maxDevices: 1, demo: false, iat: now, exp: now + 3600 })).toString('base64url')
  return `${head}.${sign(null, Buffer.from(head, 'ascii'), privateKey).toString('base64url')}`
}

// A certificate whose two parts both contain base64url-only characters, so that the standard
// alphabet (+ /) gives a different string for the same bytes.
let certificate = ''
for (let i = 0; ; i++) {
  certificate = issue(`device-${i}-\u00ff\u00fb`)
  const [head, signature] = certificate.split('.') as [string, string]
  if (/[-_]/.test(head) && /[-_]/.test(signature)) break
}
const [head, signature] = certificate.split('.') as [string, string]
const toStandard = (s: string) => s.replace(/-/g, '+').replace(/_/g, '/')

/** Same bytes, other spelling: sets an unused low bit of the last character (86 characters carry 4 spare bits). */
function dirtyTrailingBits (part: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const last = alphabet.indexOf(part.at(-1)!)
  return part.slice(0, -1) + alphabet[last | 1]
}

const variants: Array<[string, string]> = [
  ['= appended', `${certificate}=`],
  ['== appended', `${certificate}==`],
  ['= inside', `${head}=.${signature}`],
  ['trailing space', `${certificate} `],
  ['leading space', ` ${certificate}`],
  ['trailing newline', `${certificate}\n`],
  ['standard alphabet in the payload', `${toStandard(head)}.${signature}`],
  ['standard alphabet in the signature', `${head}.${toStandard(signature)}`],
  ['non-zero trailing bits in the signature', `${head}.${dirtyTrailingBits(signature)}`],
  ['a third part', `${certificate}.x`],
  ['empty signature', `${head}.`]
]

t.test('the canonical certificate verifies in both verifiers', async (t) => {
  t.match(verifyLicenseCertificate(certificate, pem), { valid: true })
  t.match(await verifyCompact(certificate, await importVerificationKey(pem)), { ok: true })
  t.equal(signature.length % 4, 2, 'an Ed25519 signature has spare bits in its last character')
  t.not(dirtyTrailingBits(signature), signature)
  t.same(Buffer.from(dirtyTrailingBits(signature), 'base64url'), Buffer.from(signature, 'base64url'), "Node's lenient decoder reads the same bytes")
})

t.test('every other spelling is MALFORMED', async (t) => {
  const key = await importVerificationKey(pem)
  for (const [name, variant] of variants) {
    t.match(verifyLicenseCertificate(variant, pem), { valid: false, reason: 'MALFORMED' }, `service: ${name}`)
    t.match(await verifyCompact(variant, key), { ok: false, reason: 'MALFORMED' }, `SDK: ${name}`)
  }
})

t.test('base64url codec: round trip and strictness', async (t) => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n * 11) & 0xff)
    const text = encodeBase64Url(bytes)
    t.equal(text, Buffer.from(bytes).toString('base64url'), `encode ${n} bytes like Node`)
    t.same(decodeBase64Url(text), bytes, `decode ${n} bytes`)
  }
  for (const bad of ['A', 'AAAAA', 'AB==', 'AB=', 'A+', 'A/', 'AB C', 'AÉ', 'AB\u0000']) t.equal(decodeBase64Url(bad), null, JSON.stringify(bad))
  t.equal(decodeBase64Url('AB'), null, 'AB has a non-zero spare bit')
  t.same(decodeBase64Url('AA'), new Uint8Array([0]))
})
