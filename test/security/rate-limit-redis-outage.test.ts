// Rate limits while Redis is down: counters fall back to each instance's memory (limits become
// per instance, documented in the README), and the failed-lookup defence keeps blocking an
// enumerating address on every instance. The test owns its Redis (own port) and kills it mid-test.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { FAILED_LOOKUP_LIMIT } from '../../src/http/rate-limit.ts'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { buildPair, createClient, createSerial, freePort } from '../helper.ts'

async function startRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)))
    child.stdout!.on('data', (d: string) => { out += d; if (out.includes('Ready to accept connections')) resolve() })
  })
  child.stdout!.resume()
  return child
}

const validate = (app: FastifyInstance, serialNumber: string) =>
  app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber, deviceId: 'outage-device' } })

t.test('failed-lookup defence holds per instance while Redis is down', async (t) => {
  const port = await freePort()
  let redis = await startRedis(port)
  t.teardown(() => { if (redis.exitCode === null) redis.kill('SIGKILL') })
  const [a, b] = await buildPair(t, { background: false, env: { REDIS_URL: `redis://127.0.0.1:${port}`, VALIDATE_RATE_LIMIT: '100000' } })
  const client = await createClient(a)
  const known = await createSerial(a, client.id)

  // Before the outage: a few misses, shared through Redis.
  for (let i = 0; i < 3; i++) t.equal((await validate(a, generateSerialNumber())).json().code, 'NOT_FOUND')

  redis.kill('SIGKILL')
  await once(redis, 'exit')

  for (const [name, app] of [['instance b', b], ['instance a', a]] as const) {
    let notFound = 0
    let limited = 0
    for (let i = 0; i < FAILED_LOOKUP_LIMIT + 5; i++) {
      const res = await validate(app, generateSerialNumber())
      t.ok(res.statusCode < 500, `${name}: no 5xx during the outage`)
      if (res.json().code === 'NOT_FOUND') notFound++
      if (res.statusCode === 429) limited++
    }
    t.ok(notFound <= FAILED_LOOKUP_LIMIT, `${name}: at most ${FAILED_LOOKUP_LIMIT} misses answered (${notFound})`)
    t.ok(limited >= 5, `${name}: then the address is blocked (${limited} refused)`)
    const res = await validate(app, known.serialNumber)
    t.equal(res.statusCode, 429, `${name}: a known serial is refused too while the address is blocked`)
    t.match(res.json(), { statusCode: 429, code: 'RATE_LIMITED' })
    t.ok(Number(res.headers['retry-after']) >= 1, 'with Retry-After')
  }

  // Redis back on the same port: both instances reconnect and keep answering.
  redis = await startRedis(port)
  for (const app of new Set([a, b])) {
    for (let attempt = 0; ; attempt++) {
      try { await app.deps.cache.ping(); break } catch (error) { if (attempt > 50) throw error }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    t.ok((await validate(app, known.serialNumber)).statusCode < 500, 'answers after Redis is back')
  }
})
