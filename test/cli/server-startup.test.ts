// A start-up failure caused by the environment is one line naming the cause, never a stack trace.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { lockDataDir } from '../../src/infra/database.ts'
import { databaseUrl } from '../helper.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))

async function start (t: { teardown (fn: () => unknown): void }, env: Record<string, string>): Promise<{ code: number, stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'serials-start-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const full = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', DATA_DIR: dir, SIGNING_ALGORITHM: 'ED25519', LOG_LEVEL: 'warn', ...env }
  return run(process.execPath, ['--import', 'tsx', 'src/main/server.ts'], { cwd: root, env: full, timeout: 90_000 })
    .then(() => ({ code: 0, stderr: '' }), (error: { code: number, stderr: string }) => ({ code: error.code, stderr: error.stderr }))
}

function oneLine (t: Test, result: { code: number, stderr: string }, cause: RegExp) {
  t.equal(result.code, 1, 'exit code 1')
  const lines = result.stderr.trim().split('\n')
  t.equal(lines.length, 1, `one line: ${result.stderr}`)
  t.match(lines[0], /^Serials failed to start: /)
  t.match(lines[0], cause)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
}

t.test('port in use', async (t) => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const port = (taken.address() as { port: number }).port
  oneLine(t, await start(t, { API_PORT: String(port), DATABASE_URL: 'memory://' }), new RegExp(`API_PORT ${port} .*already in use`))
})

t.test('invalid configuration', async (t) => {
  oneLine(t, await start(t, { API_PORT: '99999' }), /Invalid configuration: API_PORT/)
})

t.test('embedded database held by another process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'serials-start-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const unlock = await lockDataDir(join(dir, 'pglite'))
  t.teardown(unlock)
  oneLine(t, await start(t, { DATA_DIR: dir }), new RegExp(`in use by another process \\(pid ${process.pid}\\).*DATA_DIR`))
})

t.test('PostgreSQL: a database that does not exist, a server that does not answer', { skip: databaseUrl ? false : 'needs TEST_DATABASE_URL' }, async (t) => {
  const missing = new URL(databaseUrl!)
  missing.pathname = `/serials_missing_${randomBytes(4).toString('hex')}`
  oneLine(t, await start(t, { DATABASE_URL: missing.toString() }), /database "serials_missing_[0-9a-f]+" does not exist.*create it/)
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as { port: number }).port
  await new Promise((resolve) => closed.close(resolve))
  oneLine(t, await start(t, { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/serials` }), new RegExp(`PostgreSQL at 127.0.0.1:${port}/serials does not answer`))
})
