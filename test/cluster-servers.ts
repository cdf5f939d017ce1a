// Servers owned by one test, on loopback ports of their own: a 3-master Redis Cluster, and a
// PostgreSQL primary with a streaming replica. Never the machine's Redis (6379) or PostgreSQL
// (5432); every process is killed and every directory removed at teardown.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { redisServerBinary } from './redis-server.ts'

type Tap = { teardown (fn: () => unknown): void }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor (what: string, check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!await check()) {
    if (Date.now() > end) throw new Error(`${what}: not ready within ${ms} ms`)
    await sleep(100)
  }
}

function listenable (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A free port whose +10000 (the cluster bus port) is free too. */
async function clusterPort (taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 25_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if (await listenable(port) && await listenable(port + 10_000)) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

async function freePort (): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 25_000)
    if (await listenable(port)) return port
  }
}

const redisCli = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => existsSync(p))

/** Why a Redis Cluster cannot be started here, or undefined when it can. */
export function redisClusterMissing (): string | undefined {
  if (!redisServerBinary) return 'redis-server is not installed'
  if (!redisCli) return 'redis-cli is not installed'
  return undefined
}

function cli (...args: string[]): string {
  const out = spawnSync(redisCli!, args, { encoding: 'utf8', timeout: 20_000 })
  if (out.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${out.stderr || out.stdout}`)
  return out.stdout
}

/** Starts three masters, joins them into one cluster and resolves once it reports cluster_state:ok. */
export async function ownRedisCluster (t: Tap): Promise<{ nodes: string, ports: number[] }> {
  const missing = redisClusterMissing()
  if (missing) throw new Error(missing)
  const dir = await mkdtemp(join(tmpdir(), 'serials-redis-cluster-'))
  const children: ChildProcess[] = []
  t.teardown(async () => {
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })))
    await rm(dir, { recursive: true, force: true })
  })
  const taken = new Set<number>([6379, 16379])
  const ports = [await clusterPort(taken), await clusterPort(taken), await clusterPort(taken)]
  for (const port of ports) {
    children.push(spawn(redisServerBinary!, ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' }))
  }
  for (const port of ports) {
    await waitFor(`redis-server on ${port}`, () => { try { return cli('-p', String(port), 'ping').trim() === 'PONG' } catch { return false } })
  }
  cli('--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes')
  for (const port of ports) {
    await waitFor(`cluster state on ${port}`, () => cli('-p', String(port), 'cluster', 'info').includes('cluster_state:ok'))
  }
  return { nodes: ports.map((p) => `127.0.0.1:${p}`).join(','), ports }
}

function postgresBin (): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_basebackup'))).sort((a, b) => Number(b) - Number(a))
  return versions[0] ? join(root, versions[0], 'bin') : undefined
}

/** Why a primary and replica cannot be started here, or undefined when they can. */
export function replicaMissing (): string | undefined {
  if (!postgresBin()) return 'PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed'
  if (userInfo().uid === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root without a postgres user'
  return undefined
}

export interface OwnedReplication {
  /** postgres:// URLs of the primary and of its hot-standby replica. */
  primaryUrl: string
  replicaUrl: string
}

/**
 * A fresh primary (initdb, trust auth, its pg_hba allowing replication from loopback) and a
 * replica made from it with pg_basebackup -R, streaming. Both on their own ports and directories,
 * run as the postgres user when the test runs as root (PostgreSQL refuses root).
 */
export async function ownReplication (t: Tap): Promise<OwnedReplication> {
  const missing = replicaMissing()
  if (missing) throw new Error(missing)
  const bin = postgresBin()!
  const root = userInfo().uid === 0
  const dir = await mkdtemp(join(tmpdir(), 'serials-replica-'))
  const owner = root ? { uid: Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim()), gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim()) } : undefined
  if (owner) await chown(dir, owner.uid, owner.gid)
  await chmod(dir, 0o700)
  const asPostgres = (cmd: string, args: string[]) => root ? { cmd: 'runuser', args: ['-u', 'postgres', '--', cmd, ...args] } : { cmd, args }
  const run = (cmd: string, args: string[]) => {
    const c = asPostgres(join(bin, cmd), args)
    const out = spawnSync(c.cmd, c.args, { encoding: 'utf8', timeout: 120_000 })
    if (out.status !== 0) throw new Error(`${cmd} failed: ${out.stderr || out.stdout}`)
  }
  const servers: Array<{ data: string, child: ChildProcess }> = []
  t.teardown(async () => {
    for (const { data, child } of servers.reverse()) {
      // runuser may not pass signals on: signal the postmaster itself (fast shutdown).
      const pid = Number((await readFile(join(data, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0])
      if (pid > 0) { try { process.kill(pid, 'SIGINT') } catch { /* gone */ } }
      if (child.exitCode === null && child.signalCode === null) {
        await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(15_000)])
      }
      if (pid > 0) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    }
    await rm(dir, { recursive: true, force: true })
  })
  const start = async (data: string, port: number) => {
    const c = asPostgres(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      '-c', 'fsync=off', '-c', 'max_connections=40', '-c', 'shared_buffers=16MB'])
    const child = spawn(c.cmd, c.args, { stdio: 'ignore' })
    servers.push({ data, child })
    await waitFor(`postgres on ${port}`, () => {
      if (child.exitCode !== null) throw new Error(`postgres on ${port} exited with ${child.exitCode}`)
      return spawnSync(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres']).status === 0
    }, 60_000)
  }
  const primary = join(dir, 'primary')
  const replica = join(dir, 'replica')
  await mkdir(primary)
  await mkdir(replica)
  if (owner) { await chown(primary, owner.uid, owner.gid); await chown(replica, owner.uid, owner.gid) }
  await chmod(replica, 0o700)
  run('initdb', ['-D', primary, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
  const primaryPort = await freePort()
  await start(primary, primaryPort)
  run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', replica, '-R', '-X', 'stream', '--no-sync'])
  const replicaPort = await freePort()
  await start(replica, replicaPort)
  return {
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/postgres`,
    replicaUrl: `postgres://postgres@127.0.0.1:${replicaPort}/postgres`
  }
}
