// The failed-lookup budget (src/http/lookup-budget.ts): holds taken before the work, kept or
// freed after it; exact across two instances on one Redis; per instance while Redis is down, and
// what was spent meanwhile reaches Redis when it is back. The outage case owns its Redis.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Redis } from 'ioredis'
import { createLookupBudget, type HoldAnswer, type ILookupBudget } from '../../src/http/lookup-budget.ts'
import { freePort, redisUrl } from '../helper.ts'

const LIMIT = 20
const WINDOW = 60_000

async function burst (budgets: ILookupBudget[], key: string, n: number): Promise<HoldAnswer[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => budgets[i % budgets.length]!.tryHold(key, 1, LIMIT, WINDOW)))
}
const heldOf = (answers: HoldAnswer[]) => answers.filter((a): a is Extract<HoldAnswer, { held: true }> => a.held)

t.test('in memory: spent + held never passes the limit; freed units come back, kept ones stay', async (t) => {
  const budget = createLookupBudget(undefined, 'x:')
  t.teardown(() => budget.close())
  const held = heldOf(await burst([budget], 'k', 50))
  t.equal(held.length, LIMIT, `${LIMIT} of 50 concurrent holds`)
  for (const [i, a] of held.entries()) a.hold.settle(i < 5 ? 1 : 0) // 5 NOT_FOUND, 15 other answers
  held[0]!.hold.settle(0) // a second settle changes nothing
  const again = await burst([budget], 'k', 50)
  t.equal(heldOf(again).length, LIMIT - 5, 'the 15 freed units can be held again')
  t.match(again.find((a) => !a.held), { held: false, spent: 5 }, 'a refusal says how many are spent')
  t.equal(heldOf(await burst([budget], 'other', 1)).length, 1, 'another key has its own budget')
  const tooBig = await budget.tryHold('k2', LIMIT + 1, LIMIT, WINDOW)
  t.equal(tooBig.held, false, 'more units than the limit never fit')
})

t.test('with Redis', { skip: redisUrl ? false : 'TEST_REDIS_URL not set (CI sets it)' }, async (t) => {
  const redis = new Redis(redisUrl!, { lazyConnect: false, enableAutoPipelining: true })
  t.teardown(() => redis.disconnect())
  const prefix = `lb${randomBytes(4).toString('hex')}:`

  t.test('two instances share the budget exactly', async (t) => {
    const one = createLookupBudget(redis, prefix)
    const two = createLookupBudget(redis, prefix)
    t.teardown(() => { one.close(); two.close() })
    const held = heldOf(await burst([one, two], 'ip', 120))
    t.equal(held.length, LIMIT, `${LIMIT} of 120 concurrent holds over two instances`)
    for (const [i, a] of held.entries()) a.hold.settle(i < 8 ? 1 : 0)
    await one.settled('ip', 1000)
    await sleep(50)
    t.same(await redis.hmget(`${prefix}ip`, 's', 'h'), ['8', '0'], 'Redis holds 8 spent, none held')
    t.ok(await redis.pttl(`${prefix}ip`) > 0, 'the window is the key\'s expiry')
    t.equal(heldOf(await burst([two, one], 'ip', 120)).length, LIMIT - 8, 'the freed units are free on both instances')
  })

  t.test('a waiter learns of a settlement on its instance once Redis has it', async (t) => {
    const budget = createLookupBudget(redis, prefix)
    t.teardown(() => budget.close())
    const held = heldOf(await burst([budget], 'wake', LIMIT))
    t.equal((await budget.tryHold('wake', 1, LIMIT, WINDOW)).held, false)
    const woken = budget.settled('wake', 5000)
    const start = Date.now()
    held[0]!.hold.settle(0)
    await woken
    t.ok(Date.now() - start < 1000, 'woken by the settlement, not by the timeout')
    t.equal((await budget.tryHold('wake', 1, LIMIT, WINDOW)).held, true, 'and the freed unit is there')
  })
})

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

t.test('Redis down: per instance, from the spent count last seen; what was spent meanwhile reaches Redis', { skip: redisUrl ? false : 'needs redis-server' }, async (t) => {
  const port = await freePort()
  let server = await startRedis(port)
  t.teardown(() => { if (server.exitCode === null) server.kill('SIGKILL') })
  const redis = new Redis({ port, host: '127.0.0.1', enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1000, retryStrategy: () => 100 })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  for (let i = 0; i < 50 && redis.status !== 'ready'; i++) await sleep(50)
  const prefix = 'outage:'
  const one = createLookupBudget(redis, prefix)
  const two = createLookupBudget(redis, prefix)
  t.teardown(() => { one.close(); two.close() })

  // Before: 6 spent, shared.
  for (const a of heldOf(await burst([one, two], 'ip', 6))) a.hold.settle(1)
  await sleep(100)
  t.equal((await one.tryHold('ip', 1, LIMIT, WINDOW)).held, true, 'one more hold, which reads the 6 spent into this instance')
  server.kill('SIGKILL')
  await new Promise((resolve) => server.once('exit', resolve))

  const during = heldOf(await burst([one], 'ip', 50))
  t.equal(during.length, LIMIT - 6, `instance one: ${LIMIT} - 6 holds while Redis is down (per instance)`)
  for (const a of during) a.hold.settle(1)
  t.equal((await one.tryHold('ip', 1, LIMIT, WINDOW)).held, false, 'then instance one refuses')

  server = await startRedis(port)
  for (let i = 0; i < 50 && redis.status !== 'ready'; i++) await sleep(100)
  await sleep(300) // the retry tick sends what was spent during the outage
  t.equal(Number(await redis.hget(`${prefix}ip`, 's')), LIMIT - 6, 'the units spent during the outage are in Redis now')
  const after = await two.tryHold('ip', 1, LIMIT, WINDOW)
  t.equal(after.held, true, 'the other instance still has room in the new Redis window')
  t.equal(heldOf(await burst([two], 'ip', 50)).length, 5, 'and 5 more: the limit counts what was spent during the outage')
})
