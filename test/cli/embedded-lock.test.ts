// PGlite is single-process: the server holds DATA_DIR, and a CLI command started next to it
// refuses with one line instead of printing a key the server would never see. A lock left by a
// process that is gone is taken over. Also the first-hour flow on the embedded database.
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { runCli } from '../../src/main/cli.ts'
import { lockDataDir } from '../../src/infra/database.ts'
import { freePort } from '../helper.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const KEY = /^srl_[0-9A-Z]{26}_[A-Za-z0-9_-]{43}$/

function capture () {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } }
}

/** A DATA_DIR of its own; Ed25519 so the first start does not spend seconds on an RSA-4096 key. */
function dataDir (t: { teardown (fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'serials-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
const envFor = (dir: string) => ({ NODE_ENV: 'test', DATA_DIR: dir, SIGNING_ALGORITHM: 'ED25519', LOG_LEVEL: 'silent' })

t.test('the CLI refuses a DATA_DIR held by a live process, in one line naming the way out', async (t) => {
  const dir = dataDir(t)
  const unlock = await lockDataDir(join(dir, 'pglite')) // held by this (live) process, as a server would
  const c = capture()
  t.equal(await runCli(['create-api-key', '--role', 'ADMIN', '--name', 'ops'], envFor(dir), c.io), 1)
  t.same(c.out, [], 'no key printed')
  t.equal(c.err.length, 1, 'one line')
  t.match(c.err[0], new RegExp(`in use by another process \\(pid ${process.pid}\\)`))
  t.match(c.err[0], /stop the server first/)
  t.match(c.err[0], /createApiKey mutation/)
  await unlock()
  t.notOk(existsSync(join(dir, 'pglite.lock')), 'released')
  const ok = capture()
  t.equal(await runCli(['create-api-key', '--role', 'ADMIN', '--name', 'ops'], envFor(dir), ok.io), 0, ok.err.join('\n'))
  t.match(ok.out[0], KEY)
  t.notOk(existsSync(join(dir, 'pglite.lock')), 'the CLI released the lock when done')
})

t.test('a stale lock (its process is gone, or it names another host) is taken over', async (t) => {
  const dir = dataDir(t)
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  const deadPid = Number(gone.stdout)
  for (const holder of [{ pid: deadPid, host: hostname() }, { pid: process.pid, host: 'another-host.example' }, 'garbage']) {
    writeFileSync(join(dir, 'pglite.lock'), typeof holder === 'string' ? holder : JSON.stringify(holder))
    const c = capture()
    t.equal(await runCli(['migrate'], envFor(dir), c.io), 0, `${JSON.stringify(holder)}: ${c.err.join(' ')}`)
    t.notOk(existsSync(join(dir, 'pglite.lock')), 'and released after')
  }
})

async function startServer (t: { teardown (fn: () => unknown): void }, dir: string, port: number): Promise<{ child: ChildProcess, logs: () => string, exited: Promise<number | null> }> {
  const env: Record<string, string | undefined> = { ...process.env, ...envFor(dir), API_PORT: String(port), LOG_LEVEL: 'info', ADMIN_API_KEY: undefined }
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let logs = ''
  child.stdout!.on('data', (chunk: Buffer) => { logs += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { logs += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  t.teardown(() => { child.kill('SIGKILL') })
  const end = Date.now() + 60_000
  for (;;) {
    try { if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break } catch {}
    if (child.exitCode !== null || Date.now() > end) throw new Error(`server did not start: ${logs}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  // The first-credential hint is logged right after listening.
  while (!/No API key exists yet|"msg":"GraphiQL/.test(logs) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 100))
  return { child, logs: () => logs, exited }
}

t.test('first hour on the embedded database: hint, CLI refused while the server runs, key works after', async (t) => {
  const dir = dataDir(t)
  const port = await freePort()
  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/main/cli.ts', ...args], { cwd: root, env: { ...process.env, ...envFor(dir) } })

  const first = await startServer(t, dir, port)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.match(first.logs(), /No API key exists yet.*stop this server.*npm run -s cli -- create-api-key --role ADMIN.*ADMIN_API_KEY/, 'the start-up log says how to get the first key')
  const lock = JSON.parse(readFileSync(join(dir, 'pglite.lock'), 'utf8')) as { pid: number }
  t.equal(lock.pid, first.child.pid, 'the server holds DATA_DIR')

  const refused = await cli('create-api-key', '--role', 'ADMIN', '--name', 'ops').then(() => undefined, (error: { code: number, stdout: string, stderr: string }) => error)
  t.equal(refused?.code, 1, 'the CLI exits 1')
  t.equal(refused?.stdout, '', 'and prints no key')
  t.equal(refused?.stderr.trim().split('\n').length, 1, 'one line on stderr')
  t.match(refused?.stderr, /in use by another process .*stop the server first .*createApiKey/)
  t.equal((await fetch(`http://127.0.0.1:${port}/health/ready`)).status, 200, 'the server is unaffected')

  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0, 'graceful stop')
  t.notOk(existsSync(join(dir, 'pglite.lock')), 'the lock is released on stop')

  const { stdout } = await cli('create-api-key', '--role', 'ADMIN', '--name', 'ops')
  const key = stdout.trim()
  t.match(key, KEY, 'stdout is only the key')

  const second = await startServer(t, dir, port)
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: '{ me { role } }' })
  })
  t.same(await res.json(), { data: { me: { role: 'ADMIN' } } }, 'the server accepts the key the CLI made')
  t.notMatch(second.logs(), /No API key exists yet/, 'no hint once a key exists')
  second.child.kill('SIGTERM')
  await second.exited
})
