// The cache's outage rule on its own, with a bus whose health the test controls: while the bus is
// silent an L1 entry is served for at most DEGRADED_TTL_MS, and L1 is emptied once it is heard
// again (invalidations may have been missed); invalidations that could not be sent go out then.
import t from 'tap'
import mqemitter from 'mqemitter'
import { createCache, DEGRADED_TTL_MS, INVALIDATE_TOPIC } from '../../src/infra/cache.ts'
import type { IEventBus } from '../../src/infra/event-bus.ts'

function controlledBus () {
  let healthy = true
  let failPublish = false
  const listeners = new Set<(healthy: boolean) => void>()
  const published: Array<{ topic: string, payload: unknown }> = []
  const bus: IEventBus = {
    kind: 'redis',
    emitter: mqemitter(),
    healthy: () => healthy,
    onHealthChange (listener) { listeners.add(listener); return () => { listeners.delete(listener) } },
    whenHealthy: async () => healthy,
    async publish (topic, payload) {
      if (failPublish) throw new Error('bus down')
      published.push({ topic, payload })
    },
    async subscribe () { return async () => {} },
    ping: async () => 0,
    close: async () => {}
  }
  return {
    bus,
    published,
    setHealthy (value: boolean) {
      healthy = value
      failPublish = !value
      for (const listener of listeners) listener(value)
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('while the bus is silent an L1 entry lives at most DEGRADED_TTL_MS', async (t) => {
  const control = controlledBus()
  const cache = await createCache({ redis: undefined, bus: control.bus })
  t.teardown(() => cache.close())
  await cache.set('old', 'cached before the outage', 300)
  control.setHealthy(false)
  await cache.set('fresh', 'cached during the outage', 300)
  t.equal(cache.getLocal('old'), 'cached before the outage', 'young enough to serve')
  await sleep(DEGRADED_TTL_MS + 100)
  t.equal(cache.getLocal('old'), undefined, 'too old while nobody can tell us it changed')
  t.equal(await cache.get('fresh'), undefined, 'the same for entries stored during the outage')
  await cache.set('again', 'read from the database', 300)
  t.equal(cache.getLocal('again'), 'read from the database', 'a fresh read is cached briefly')
})

t.test('a healthy bus keeps entries for their normal TTL', async (t) => {
  const control = controlledBus()
  const cache = await createCache({ redis: undefined, bus: control.bus })
  t.teardown(() => cache.close())
  await cache.set('key', 'value', 300)
  await sleep(DEGRADED_TTL_MS + 100)
  t.equal(cache.getLocal('key'), 'value')
})

t.test('L1 is emptied when the bus is heard again, and unsent invalidations go out then', async (t) => {
  const control = controlledBus()
  const cache = await createCache({ redis: undefined, bus: control.bus })
  t.teardown(() => cache.close())
  await cache.set('a', 1, 300)
  control.setHealthy(false)
  await cache.set('b', 2, 300)
  await cache.invalidate(['revoked-here'])
  t.same(control.published, [], 'nothing could be sent while the bus was down')
  control.setHealthy(true)
  t.equal(cache.getLocal('a'), undefined, 'dropped: an invalidation for it may have been missed')
  t.equal(cache.getLocal('b'), undefined)
  await sleep(10)
  t.same(control.published, [{ topic: INVALIDATE_TOPIC, payload: { keys: ['revoked-here'] } }], 'the missed invalidation is sent on recovery')
})
