// A Redis server owned by one test: its own port, no persistence, killed and restarted at will
// (outage tests). Never the machine's shared Redis.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { freePort } from './helper.ts'

export const redisServerBinary = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server']
  .find((p) => spawnSync('test', ['-x', p]).status === 0)

export interface OwnedRedis {
  readonly url: string
  readonly port: number
  /** SIGKILL: connections drop at once, data is gone (no persistence). */
  stop (): Promise<void>
  /** Starts again on the same port and resolves once it answers PING. */
  start (): Promise<void>
}

type Tap = { teardown (fn: () => unknown): void }

function answersPing (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let reply = ''
    const done = (ok: boolean) => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => { reply += chunk.toString(); if (reply.includes('\r\n')) done(reply.startsWith('+PONG')) })
    socket.on('error', () => done(false))
  })
}

export async function ownRedis (t: Tap): Promise<OwnedRedis> {
  if (!redisServerBinary) throw new Error('redis-server is not installed')
  const port = await freePort()
  let child: ChildProcess | undefined
  const owned: OwnedRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async start () {
      if (child) return
      const proc = spawn(redisServerBinary!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
      child = proc
      proc.on('exit', () => { if (child === proc) child = undefined })
      const end = Date.now() + 10_000
      while (!await answersPing(port)) {
        if (Date.now() > end) throw new Error(`redis-server on port ${port} did not start`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    },
    async stop () {
      const proc = child
      if (!proc) return
      child = undefined
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve())
        proc.kill('SIGKILL')
      })
    }
  }
  t.teardown(() => owned.stop())
  await owned.start()
  return owned
}
