// Both READMEs name the fields a signed answer covers; they are exactly the ones the service signs
// (answerSigningInput), and the SDK's README no longer says entitlements or the lease are unsigned.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { answerSigningInput } from '../../packages/client/src/verify.ts'
import { readme, root } from './readme.ts'

const sdk = readFileSync(join(root, 'packages/client/README.md'), 'utf8')
const TEMPLATE = /\{"code":…,[^\n`]*"valid":…\}/

t.test('the documented signed fields are the signed fields', async (t) => {
  const signed = JSON.parse(new TextDecoder().decode(answerSigningInput({
    valid: true, code: 'VALID', entitlements: ['A'], expiresAt: null, isDemo: false, leaseExpiresAt: null, nonce: 'n', remainingDevices: 1, serverTime: '2026-01-01T00:00:00.000Z'
  }, 'pc')))
  for (const [name, text] of [['README.md', readme()], ['packages/client/README.md', sdk]] as const) {
    const template = TEMPLATE.exec(text)?.[0]
    t.ok(template, `${name} shows the signed JSON`)
    t.same([...template!.matchAll(/"(\w+)":/g)].map((m) => m[1]), Object.keys(signed), `${name}: the same fields, in sorted order`)
  }
  t.notMatch(sdk, /not (covered|signed)[^.]*(entitlements|leaseExpiresAt)|(entitlements|leaseExpiresAt)[^.]*not (covered|signed)/i)
  t.match(sdk, /`entitlements` and `leaseExpiresAt` are\s+signed/)
  t.match(sdk, /rsa_pss_saltlen:32/)
})
