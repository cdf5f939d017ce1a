// readThrough on its own: an L1 hit comes back as the value (no promise, no L2 read), a miss reads
// L2, then the loader, whose answer is stored; an undefined answer is not.
import t from 'tap'
import { defineNamespace, readThrough, store, type ICache } from '../../src/infra/cache.ts'

function fakeCache () {
  const l1 = new Map<string, unknown>()
  const l2 = new Map<string, unknown>()
  const calls: string[] = []
  const cache = {
    kind: 'memory',
    redis: undefined,
    getLocal: <T>(key: string) => { calls.push(`getLocal ${key}`); return l1.get(key) as T | undefined },
    get: async <T>(key: string) => { calls.push(`get ${key}`); return (l1.get(key) ?? l2.get(key)) as T | undefined },
    set: async (key: string, value: unknown, ttl: number) => { calls.push(`set ${key} ${ttl}`); l1.set(key, value) },
    invalidate: async () => {},
    replace: async () => {},
    ping: async () => 0,
    close: async () => {}
  } satisfies ICache
  return { cache, l1, l2, calls }
}

const things = defineNamespace<{ n: number }, [a: string, b: string]>('t', 42, (a, b) => `${a}:${b}`)

t.test('keys carry the prefix', async (t) => {
  t.equal(things.key('x', 'y'), 't:x:y')
  t.equal(things.ttlS, 42)
})

t.test('an L1 hit is the value itself; L2 and the loader are not asked', async (t) => {
  const { cache, l1, calls } = fakeCache()
  l1.set('t:x:y', { n: 1 })
  const read = readThrough(cache, things, ['x', 'y'], () => { throw new Error('not called') })
  t.same(read, { n: 1 })
  t.notOk(read instanceof Promise)
  t.same(calls, ['getLocal t:x:y'])
})

t.test('a miss reads L2, then loads and stores; undefined is not stored', async (t) => {
  const { cache, l2, calls } = fakeCache()
  l2.set('t:l2:hit', { n: 2 })
  t.same(await readThrough(cache, things, ['l2', 'hit'], () => { throw new Error('not called') }), { n: 2 })
  t.same(await readThrough(cache, things, ['db', 'row'], async () => ({ n: 3 })), { n: 3 })
  t.ok(calls.includes('set t:db:row 42'), 'stored with the namespace lifetime')
  t.equal(await readThrough(cache, things, ['db', 'none'], async () => undefined), undefined)
  t.notOk(calls.some((c) => c.startsWith('set t:db:none')), 'a missing row is not cached')
  await store(cache, things, ['known', 'value'], { n: 4 })
  t.same(readThrough(cache, things, ['known', 'value'], () => undefined), { n: 4 })
})
