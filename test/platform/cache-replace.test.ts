// cache.replace(): the instance that changed a value keeps the new one in L1, while Redis and every
// other instance drop theirs (an activation's new device count is kept where it was taken). Two
// caches on one bus stand for two instances: on Redis when TEST_REDIS_URL is set, else in-process.
import t from 'tap'
import { createCache } from '../../src/infra/cache.ts'
import { createEventBus } from '../../src/infra/event-bus.ts'
import { testConfig, until } from '../helper.ts'

t.test('replace keeps the value here and drops it everywhere else', async (t) => {
  const { redis } = await testConfig()
  const busA = createEventBus(redis)
  const busB = redis ? createEventBus(redis) : busA
  t.teardown(async () => { await busA.close(); if (busB !== busA) await busB.close() })
  t.ok(await busA.whenHealthy(5000) && await busB.whenHealthy(5000), 'both buses heard')
  const a = await createCache({ redis, bus: busA })
  const b = await createCache({ redis, bus: busB })
  t.teardown(async () => { await a.close(); await b.close() })

  await a.set('serial', { activeDevices: 1 }, 300)
  t.same(await b.get('serial'), redis ? { activeDevices: 1 } : undefined, redis ? 'B reads it from Redis into its L1' : 'in-process: B has its own L1')
  if (!redis) await b.set('serial', { activeDevices: 1 }, 300)
  t.same(b.getLocal('serial'), { activeDevices: 1 })

  await a.replace('serial', { activeDevices: 2 })
  await until(() => b.getLocal('serial') === undefined, 'B to drop its copy')
  // A hears B's probe only after its own message (Redis delivers in the order it published).
  await a.set('probe', 1, 300)
  await b.invalidate(['probe'])
  await until(() => a.getLocal('probe') === undefined, 'A to hear the probe')
  t.same(a.getLocal('serial'), { activeDevices: 2 }, 'A keeps the value it knows')
  if (redis) {
    t.equal(await a.redis!.get(`${redis.prefix}:serial`), null, 'Redis no longer holds the old value')
    t.equal(await b.get('serial'), undefined, 'so B reads the source again')
  }

  // A plain invalidation from A still drops A's own copy.
  await a.invalidate(['serial'])
  t.equal(a.getLocal('serial'), undefined)
})
