// PostgreSQL outages a test can cause without touching the machine's own server (5432): a TCP
// proxy in front of it that the test pauses (a black hole: bytes are held, nothing answers),
// drops (every connection reset, new ones refused) and resumes; and a throwaway PostgreSQL of the
// test's own (initdb on a loopback port) that it stops, restarts, makes read-only or fills up.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { freePort } from './helper.ts'

type Tap = { teardown (fn: () => unknown): void }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface PgProxy {
  readonly port: number
  /** `url` with its host and port replaced by the proxy's. */
  urlFor (url: string): string
  /** Black hole: open connections stop moving bytes; new ones are accepted and never answered. */
  pause (): void
  /** Every connection reset; new connections reset at once (as a server that is gone). */
  drop (): void
  /** Bytes flow again; held connections are connected through. */
  resume (): void
  /** Connections accepted since start (each one the service opened). */
  readonly accepted: number
}

/** A TCP proxy on a loopback port of its own in front of `target` (host:port). */
export async function pgProxy (t: Tap, target: { host: string, port: number }): Promise<PgProxy> {
  let mode: 'open' | 'paused' | 'dropped' = 'open'
  let accepted = 0
  const pairs = new Set<{ client: Socket, upstream?: Socket }>()
  const held: Socket[] = []

  const through = (client: Socket) => {
    const pair: { client: Socket, upstream?: Socket } = { client }
    pairs.add(pair)
    const upstream = connect(target.port, target.host)
    pair.upstream = upstream
    const end = () => { pairs.delete(pair); client.destroy(); upstream.destroy() }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    upstream.pipe(client)
    client.resume()
  }

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    accepted++
    if (mode === 'dropped') { client.resetAndDestroy(); return }
    if (mode === 'paused') {
      held.push(client)
      client.on('error', () => {})
      return
    }
    through(client)
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const { client, upstream } of pairs) { client.destroy(); upstream?.destroy() }
    for (const client of held) client.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return {
    port,
    get accepted () { return accepted },
    urlFor (url: string) {
      const u = new URL(url)
      u.hostname = '127.0.0.1'
      u.port = String(port)
      return u.toString()
    },
    pause () {
      mode = 'paused'
      for (const { client, upstream } of pairs) { client.pause(); upstream?.pause() }
    },
    drop () {
      mode = 'dropped'
      for (const { client, upstream } of [...pairs]) { client.resetAndDestroy(); upstream?.destroy() }
      for (const client of held.splice(0)) client.resetAndDestroy()
    },
    resume () {
      mode = 'open'
      for (const { client, upstream } of pairs) { client.resume(); upstream?.resume() }
      for (const client of held.splice(0)) if (!client.destroyed) through(client)
    }
  }
}

function postgresBin (): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
  return versions[0] ? join(root, versions[0], 'bin') : undefined
}

/** Why a PostgreSQL of the test's own cannot be started here, or undefined when it can. */
export function ownPostgresMissing (): string | undefined {
  if (!postgresBin()) return 'PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed'
  if (userInfo().uid === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root without a postgres user'
  return undefined
}

export interface OwnedPostgres {
  readonly url: string
  readonly port: number
  readonly dir: string
  /** Fast shutdown (SIGINT): sessions get 57P01, then connections are refused. Resolves once it exited. */
  stop (): Promise<void>
  /** Starts again on the same port; resolves once it accepts connections. */
  start (): Promise<void>
  /** Runs SQL as the superuser through psql in `database` (one statement per string). */
  psql (database: string, ...statements: string[]): string
  /** uid/gid PostgreSQL runs as (for directories it must own). */
  readonly owner: { uid: number, gid: number } | undefined
}

/** A fresh cluster (initdb, trust auth) on a loopback port and a temp directory of its own. */
export async function ownPostgres (t: Tap): Promise<OwnedPostgres> {
  const missing = ownPostgresMissing()
  if (missing) throw new Error(missing)
  const bin = postgresBin()!
  const root = userInfo().uid === 0
  const dir = await mkdtemp(join(tmpdir(), 'serials-pgdown-'))
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim())
  const owner = root ? { uid: id('-u'), gid: id('-g') } : undefined
  if (owner) await chown(dir, owner.uid, owner.gid)
  await chmod(dir, 0o700)
  const asPostgres = (cmd: string, args: string[]) => root ? { cmd: 'runuser', args: ['-u', 'postgres', '--', cmd, ...args] } : { cmd, args }
  const data = join(dir, 'data')
  await mkdir(data)
  if (owner) await chown(data, owner.uid, owner.gid)
  const init = asPostgres(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
  const out = spawnSync(init.cmd, init.args, { encoding: 'utf8', timeout: 120_000 })
  if (out.status !== 0) throw new Error(`initdb failed: ${out.stderr || out.stdout}`)
  const port = await freePort()
  let child: ChildProcess | undefined

  const postmasterPid = async () => Number((await readFile(join(data, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0])
  const ready = () => spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres']).status === 0
  const owned: OwnedPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    owner,
    async start () {
      const c = asPostgres(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
        '-c', 'fsync=off', '-c', 'max_connections=60', '-c', 'shared_buffers=16MB'])
      const started = spawn(c.cmd, c.args, { stdio: 'ignore' })
      child = started
      const end = Date.now() + 60_000
      while (!ready()) {
        if (started.exitCode !== null) throw new Error(`postgres on ${port} exited with ${started.exitCode}`)
        if (Date.now() > end) throw new Error(`postgres on ${port} not ready within 60 s`)
        await sleep(50)
      }
    },
    async stop () {
      const pid = await postmasterPid()
      const running = child
      // runuser may not pass signals on: signal the postmaster itself.
      if (pid > 0) { try { process.kill(pid, 'SIGINT') } catch { /* gone */ } }
      if (running && running.exitCode === null && running.signalCode === null) {
        await Promise.race([new Promise((resolve) => running.once('exit', resolve)), sleep(15_000)])
      }
      if (pid > 0) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    },
    psql (database: string, ...statements: string[]) {
      const args = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-qAtX', ...statements.flatMap((s) => ['-c', s])]
      const res = spawnSync(join(bin, 'psql'), args, { encoding: 'utf8', timeout: 60_000 })
      if (res.status !== 0) throw new Error(`psql failed: ${res.stderr || res.stdout}`)
      return res.stdout.trim()
    }
  }
  t.teardown(async () => {
    await owned.stop()
    await rm(dir, { recursive: true, force: true })
  })
  // A test process that dies (or is killed on a timeout) leaves no server behind.
  process.once('exit', () => {
    try {
      const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
      if (pid > 0) process.kill(pid, 'SIGQUIT')
    } catch { /* stopped already: no pid file, or no such process */ }
  })
  await owned.start()
  return owned
}

/** Mounts a tmpfs of `megabytes` at a new directory (root only); undefined when mounting is not permitted. */
export async function tinyDisk (t: Tap, megabytes: number, owner: { uid: number, gid: number } | undefined): Promise<string | undefined> {
  if (userInfo().uid !== 0) return undefined
  const dir = await mkdtemp(join(tmpdir(), 'serials-tinydisk-'))
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' })
  if (mounted.status !== 0) { await rm(dir, { recursive: true, force: true }); return undefined }
  t.teardown(async () => {
    spawnSync('umount', ['-l', dir])
    await rm(dir, { recursive: true, force: true })
  })
  if (owner) await chown(dir, owner.uid, owner.gid)
  return dir
}
