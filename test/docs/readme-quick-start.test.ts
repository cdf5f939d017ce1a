// The README's Quick start, second way in: a key from the CLI, then the server, run as written in
// the repository (npm run needs its package.json) with DATA_DIR in a temporary folder.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { freePort } from '../helper.ts'
import { codeBlocks, readme, root, section, SERVER } from './readme.ts'

const run = promisify(execFile)
const blocks = codeBlocks(section(readme(), '## Quick start'), 'sh')

t.test('Quick start: a key from the CLI works on the server started after it', { timeout: 180_000 }, async (t) => {
  t.equal(blocks.length, 3, 'install, bootstrap key, CLI key')
  const block = blocks[2]!
  t.match(block, /^KEY=\$\(npm run -s cli -- create-api-key --role ADMIN --name me\)\nnpm start\n$/)
  const dir = mkdtempSync(join(tmpdir(), 'serials-quick-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const port = await freePort()
  const env = { PATH: process.env.PATH!, HOME: process.env.HOME!, DATA_DIR: join(dir, 'data'), API_PORT: String(port) }
  const script = [
    'set -m',
    // In the foreground as written; here in the background, so that the test can call it.
    block.replace(/^npm start$/m, `${SERVER} > ${join(dir, 'server.log')} 2>&1 &`),
    `until curl -sf localhost:${port}/health >/dev/null; do sleep 1; done`,
    `curl -s localhost:${port}/graphql -H "authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"query":"query Me { me { role } }"}'`,
    'kill %1', 'wait %1'
  ].join('\n')
  const { stdout } = await run('bash', ['-c', script], { cwd: root, env, timeout: 150_000 })
  t.equal(stdout, '{"data":{"me":{"role":"ADMIN"}}}', 'stdout of $(npm run -s cli …) was the key alone')
  t.ok(existsSync(join(dir, 'data', 'pglite')), 'the database went to DATA_DIR')
})
