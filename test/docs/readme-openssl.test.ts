// The README's OpenSSL recipe ("Checking a signed answer") on ED25519, run as written against a
// real service (RSA-PSS-4096, the default, runs in readme-walkthrough.test.ts), and the same recipe
// with one byte changed in what it checks: then nothing verifies.
import t from 'tap'
import { codeBlocks, readme, runBlocks, section } from './readme.ts'

const text = readme()
const start = codeBlocks(section(text, '## Walk-through'), 'sh')[0]!
const recipe = codeBlocks(section(text, '### Checking a signed answer'), 'sh')[0]!

t.test('ED25519: openssl verifies a signed answer and a certificate; a changed one fails', { timeout: 180_000 }, async (t) => {
  const tampered = recipe
    .replace('> "$V/answer.json"', '| sed \'s/"valid":true/"valid":false/\' > "$V/answer.json"')
    // eslint-disable-next-line no-template-curly-in-string -- shell text, not a template
    .replace('printf %s "${CERT%%.*}" > "$V/cert.signed"', 'printf %s "${CERT%%.*}" | sed \'s/^e/f/\' > "$V/cert.signed"')
  t.equal(tampered.split('sed ').length, 3, 'both checks were changed')
  const ran = await runBlocks(t, [start, recipe, tampered].map((code) => ({ code })), { SIGNING_ALGORITHM: 'ED25519' })
  const [, genuine, changed] = ran.blocks as [string, string, string]
  t.equal(genuine.match(/^Signature Verified Successfully$/gm)?.length, 2, `openssl verifies the answer and the certificate:\n${genuine}`)
  t.match(genuine, /"alg":"ED25519"/)
  t.notMatch(changed, /Verified Successfully/, `nothing changed verifies:\n${changed}`)
  t.equal(changed.match(/^Signature Verification Failure$/gm)?.length, 2, 'openssl says so, twice')
})
