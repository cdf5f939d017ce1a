// The rate-limit window counters against the real Redis (TEST_REDIS_URL; CI sets it): shared
// totals across instances, local answers far from the limit, exact answers near it.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { createWindowCounter, SYNC_MS } from '../../src/http/rate-limit.ts'
import { redisUrl } from '../helper.ts'

/** Redis commands this connection's server has run since the last call (INFO commandstats). */
async function evalCalls (redis: Redis): Promise<number> {
  const info = await redis.info('commandstats')
  return [...info.matchAll(/cmdstat_(?:eval|evalsha):calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
}

t.test('in memory (no Redis): exact counts, windows expire', async (t) => {
  const counter = createWindowCounter(undefined, 'x:')
  t.equal((await counter.hit('k', 50, 1, 10)).count, 1)
  t.equal((await counter.hit('k', 50, 2, 10)).count, 3)
  t.equal((await counter.peek('k', 10)).count, 3)
  await sleep(60)
  t.equal((await counter.peek('k', 10)).count, 0, 'the window ended')
  t.equal((await counter.hit('k', 50, 1, 10)).count, 1)
  counter.close()
})

t.test('with Redis', { skip: redisUrl ? false : 'TEST_REDIS_URL not set (CI sets it)' }, async (t) => {
  const redis = new Redis(redisUrl!, { lazyConnect: false })
  t.teardown(() => redis.disconnect())
  const prefix = `wc${randomBytes(4).toString('hex')}:`

  t.test('small limits are exact across two instances', async (t) => {
    const one = createWindowCounter(redis, prefix)
    const two = createWindowCounter(redis, prefix)
    t.teardown(() => { one.close(); two.close() })
    const counts = []
    for (const c of [one, two, one, two, one]) counts.push((await c.hit('small', 60_000, 1, 4)).count)
    t.same(counts, [1, 2, 3, 4, 5], 'each hit near the limit sees every earlier hit')
    t.equal(Number(await redis.get(`${prefix}small`)), 5)
  })

  t.test('far below the limit: answered locally, synced in the background', async (t) => {
    const one = createWindowCounter(redis, prefix)
    const two = createWindowCounter(redis, prefix)
    t.teardown(() => { one.close(); two.close() })
    const before = await evalCalls(redis)
    let last = 0
    for (let i = 0; i < 200; i++) last = (await one.hit('big', 60_000, 1, 100_000)).count
    t.equal(last, 200, 'the local estimate counts every hit')
    t.ok(await evalCalls(redis) - before <= 5, 'at most a few Redis calls for 200 hits')
    await sleep(SYNC_MS * 3)
    t.equal(Number(await redis.get(`${prefix}big`)), 200, 'the pending hits reached Redis')
    t.ok(Number(await redis.pttl(`${prefix}big`)) > 0, 'with the window as expiry')
    // The other instance learns the shared total on its first hit of the key.
    t.equal((await two.hit('big', 60_000, 1, 100_000)).count, 201)
    await sleep(1200) // a key idle for a second is read from Redis again on its next use
    t.equal((await one.hit('big', 60_000, 1, 100_000)).count, 202, 'and the first sees the second\'s hit after a refresh')
  })

  t.test('peek reads a key counted by another instance', async (t) => {
    const one = createWindowCounter(redis, prefix)
    const two = createWindowCounter(redis, prefix)
    t.teardown(() => { one.close(); two.close() })
    t.equal((await two.peek('nf', 20)).count, 0)
    for (let i = 0; i < 12; i++) await one.hit('nf', 60_000, 1, 20)
    await sleep(1200) // a key last read over a second ago is read again
    t.equal((await two.peek('nf', 20)).count, 12)
  })

  t.test('a burst of concurrent hits near the limit: each hit sees its own place, not the ones still in flight', async (t) => {
    const one = createWindowCounter(redis, prefix)
    const two = createWindowCounter(redis, prefix)
    t.teardown(() => { one.close(); two.close() })
    const counts = await Promise.all(Array.from({ length: 330 }, (_, i) => (i % 3 ? one : two).hit('burst', 60_000, 1, 300)))
    t.equal(counts.filter((c) => c.count <= 300).length, 300, '300 of 330 within the limit of 300')
    t.same(counts.map((c) => c.count).sort((x, y) => x - y), Array.from({ length: 330 }, (_, i) => i + 1), 'places 1 to 330, each once')
  })

  t.test('Redis unreachable: a concurrent burst is counted in order too', async (t) => {
    const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
    const counter = createWindowCounter(dead, prefix)
    t.teardown(() => { counter.close(); dead.disconnect() })
    const counts = await Promise.all(Array.from({ length: 5 }, () => counter.hit('down-burst', 60_000, 1, 3)))
    t.same(counts.map((c) => c.count).sort(), [1, 2, 3, 4, 5])
  })

  t.test('Redis unreachable: fails open and keeps counting locally', async (t) => {
    const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null })
    const counter = createWindowCounter(dead, prefix)
    t.teardown(() => { counter.close(); dead.disconnect() })
    t.equal((await counter.hit('down', 60_000, 1, 3)).count, 1)
    t.equal((await counter.hit('down', 60_000, 1, 3)).count, 2)
    t.equal((await counter.hit('down', 60_000, 1, 3)).count, 3)
    t.equal((await counter.hit('down', 60_000, 1, 3)).count, 4, 'the local count still refuses past the limit')
  })
})
