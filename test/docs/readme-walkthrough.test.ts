// The README's commands, run as written (issue #28): the Walk-through, the OpenSSL check of a
// signed answer and a certificate, and the floating-seat example, whose blocks are pasted here
// with a pause longer than a lease (and the sweep) between them. The server runs on embedded
// defaults in a temporary working directory (so ./data is there, never in the repository). Two
// substitutions, both about where the server runs: `npm start` becomes the command it runs
// (without the prestart build of the web pages into dist/), and localhost:3000 a free port. Every
// `# → {…}` line of a block must match its output, in order. ED25519: readme-openssl.test.ts.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { codeBlocks, promised, readme, runBlocks, section } from './readme.ts'

const text = readme()
const walk = codeBlocks(section(text, '## Walk-through'), 'sh')
const signed = codeBlocks(section(text, '### Checking a signed answer'), 'sh')
const floating = codeBlocks(section(text, '### Worked example: a Pro floating policy'), 'sh')

t.test('the README has the blocks this test runs', async (t) => {
  t.equal(walk.length, 4, 'walk-through: start, batch, validate, certificate')
  t.equal(signed.length, 1, 'the OpenSSL recipe')
  t.equal(floating.length, 4, 'floating seats: seats, lapse, cap, certificate')
  t.match(walk[0], /ADMIN_API_KEY=\$KEY npm start &/)
  t.match(walk[1], /OUT=\$\(mktemp -d\)/, 'the batch goes to a temporary folder')
  t.notMatch(walk[1], /> batch-1\.(json|txt)/, 'never into the working directory')
})

t.test('walk-through, OpenSSL recipe and floating seats on RSA-PSS-4096 (the default)', { timeout: 240_000 }, async (t) => {
  // 25 s before the second floating block, as a reader reading along: longer than a lease (10 s)
  // plus the sweep (5 s), so a seat left without heartbeats is culled for sure (the old example,
  // whose heartbeats started in its second block, then got TOO_MANY_ACTIVATIONS for tablet-3).
  const blocks = [...walk, ...signed, ...floating].map((code) => ({ code, pauseBefore: code === floating[1] ? 25 : 0 }))
  const ran = await runBlocks(t, blocks)
  const [start, batch, rest, certificate, recipe, seats, lapse, cap, offline] = ran.blocks as [string, string, string, string, string, string, string, string, string]

  t.equal(promised(t, walk[0]!, start, 'walk-through start'), 1)
  t.match(start, /^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$/m, 'the serial number is printed')
  t.match(batch, /^\s*1000$/m, '1,000 numbers')
  t.match(batch, /^same$/m, 'the retry returns the same numbers')
  t.same(readdirSync(ran.cwd).filter((f) => f.startsWith('batch-1')), [], 'nothing written to the working directory')
  const folders = readdirSync(join(ran.cwd, 'tmp')).map((name) => readdirSync(join(ran.cwd, 'tmp', name)).sort())
  t.ok(folders.some((files) => files.join() === 'batch-1.json,batch-1.txt'), `the batch files are in a folder of their own under TMPDIR (mktemp -d): ${JSON.stringify(folders)}`)
  t.equal(promised(t, walk[2]!, rest, 'validate, usage, release'), 2)
  t.match(certificate, /"certificate":"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"/)

  t.equal(recipe.match(/^Verified OK$/gm)?.length, 2, `openssl verifies the answer and the certificate:\n${recipe}`)
  t.equal(promised(t, signed[0]!, recipe, 'certificate payload'), 1)

  t.equal(promised(t, floating[0]!, seats, 'two seats'), 3)
  t.equal(promised(t, floating[1]!, lapse, 'a lapsed seat'), 3)
  t.equal(promised(t, floating[2]!, cap, 'activation cap'), 1)
  t.equal(promised(t, floating[3]!, offline, 'offline certificate'), 1)
  t.match(ran.server, /"msg":"Operator console at http:\/\/127\.0\.0\.1:\d+\/dashboard, customer portal at/)
})
