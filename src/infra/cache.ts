// Two-level cache for the validation hot path: L1 in-process LRU, L2 Redis when configured.
// Invalidation is published on the event bus so every instance drops its L1 copy.
//
// An instance that cannot hear invalidations (bus silent: Redis down or unreachable) must not
// answer from memory for long: while the bus is silent an L1 entry older than DEGRADED_TTL_MS is
// a miss (the caller reads PostgreSQL), L2 is not read (a peer's delete may have failed), and
// when the bus is heard again L1 is emptied, since invalidations may have been missed meanwhile.
// Invalidations this instance could not send are sent again then.
import { randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { IEventBus } from './event-bus.ts'
import { createRedisClient, pingRedis, type RedisClient, type RedisConfig } from './redis.ts'

export const INVALIDATE_TOPIC = 'cache/invalidate'

export interface CacheStats { hit (level: 'l1' | 'l2'): void, miss (level: 'l1' | 'l2'): void }

export interface ICache {
  readonly kind: 'redis' | 'memory'
  /** L1 only, synchronous: the cache-hit fast path. */
  getLocal<T> (key: string): T | undefined
  get<T> (key: string): Promise<T | undefined>
  set (key: string, value: unknown, ttlSeconds: number): Promise<void>
  /** Removes keys on this instance, in Redis, and (via the bus) on every other instance. */
  invalidate (keys: string[]): Promise<void>
  /**
   * The value changed here and this instance knows the new one (e.g. from a statement's
   * RETURNING): stores it in L1 and removes the key from Redis and every other instance's L1, so
   * this instance's next read is a hit while the others read the source again.
   */
  replace (key: string, value: unknown): Promise<void>
  /** The Redis client, for rate limits; undefined when running in-process. */
  readonly redis: RedisClient | undefined
  ping (): Promise<number>
  close (): Promise<void>
}

declare const VALUE: unique symbol

/** A family of keys `<prefix>:<key(...args)>` whose values are all V, with one L2 lifetime. */
export interface CacheNamespace<V, A extends unknown[]> {
  readonly prefix: string
  /** L2 (Redis) lifetime in seconds; L1 has the cache's own bound. */
  readonly ttlS: number
  key (...args: A): string
  /** Type only: the value type, never present at run time. */
  readonly [VALUE]?: V
}

export function defineNamespace<V, A extends unknown[]> (prefix: string, ttlS: number, key: (...args: A) => string): CacheNamespace<V, A> {
  const head = `${prefix}:`
  return Object.freeze({ prefix, ttlS, key: (...args: A) => head + key(...args) })
}

/**
 * The namespace's value for `args`: L1, else L2, else `load()`, whose answer is stored (not
 * awaited: L1 is written at once, Redis while the caller goes on); undefined from `load` is not
 * stored. An L1 hit is returned as it is, not as a promise, so a caller on the hot path can skip
 * the await.
 */
export function readThrough<V, A extends unknown[]> (cache: ICache, ns: CacheNamespace<V, A>, args: A, load: () => V | undefined | Promise<V | undefined>): V | Promise<V | undefined> {
  const key = ns.key(...args)
  const hit = cache.getLocal<V>(key)
  if (hit !== undefined) return hit
  return readMiss(cache, key, ns.ttlS, load)
}

async function readMiss<V> (cache: ICache, key: string, ttlS: number, load: () => V | undefined | Promise<V | undefined>): Promise<V | undefined> {
  const cached = await cache.get<V>(key)
  if (cached !== undefined) return cached
  const value = await load()
  if (value !== undefined) void cache.set(key, value, ttlS)
  return value
}

/** Stores a value the caller knows under the namespace's key and lifetime (L1 at once, then Redis). */
export function store<V, A extends unknown[]> (cache: ICache, ns: CacheNamespace<V, A>, args: A, value: NoInfer<V>): Promise<void> {
  return cache.set(ns.key(...args), value, ns.ttlS)
}

export interface CacheOptions {
  redis: RedisConfig | undefined
  bus: IEventBus
  stats?: CacheStats
  /** L1 entries; each is a small object (~300 B). */
  maxEntries?: number
  /** Upper bound on L1 staleness should an invalidation message ever be lost, in ms. */
  l1TtlMs?: number
}

const noStats: CacheStats = { hit () {}, miss () {} }

/** Longest an L1 entry is served while the bus is silent, in ms. */
export const DEGRADED_TTL_MS = 2000

export async function createCache ({ redis: redisConfig, bus, stats = noStats, maxEntries = 200_000, l1TtlMs = 30_000 }: CacheOptions): Promise<ICache> {
  // `at`: when the entry was stored (performance.now() ms), for the outage bound.
  const l1 = new LRUCache<string, { v: unknown, at: number }>({ max: maxEntries, ttl: l1TtlMs, ttlAutopurge: false })
  /** Keys whose invalidation could not be sent (Redis down): deleted and published again on recovery. */
  const unsent = new Set<string>()
  // No offline queue: while Redis is down a lookup fails at once and the caller reads PostgreSQL.
  const redis = redisConfig ? createRedisClient(redisConfig, { enableOfflineQueue: false }) : undefined
  const ns = (key: string) => `${redisConfig?.prefix ?? ''}:${key}`
  // A cluster serves commands only once its slot map is loaded; without an offline queue every
  // command before that would fail, so start-up waits for it (briefly: a dead cluster is degraded).
  if (redisConfig?.cluster && redis && redis.status !== 'ready') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000)
      redis.once('ready', () => { clearTimeout(timer); resolve() })
    })
  }
  // Start even when Redis is down (degraded): the subscription completes once it reconnects.
  let unsubscribe = async () => {}
  /** Marks this instance's own replace() messages, which must not drop the value it just stored. */
  const origin = randomBytes(8).toString('hex')
  const subscribed = bus.subscribe(INVALIDATE_TOPIC, (payload) => {
    const message = payload as { keys?: string[], from?: string } | null
    if (message?.from === origin) return
    for (const key of message?.keys ?? []) l1.delete(key)
  }).then((fn) => { unsubscribe = fn })
  let timer: NodeJS.Timeout | undefined
  await Promise.race([subscribed, new Promise((resolve) => { timer = setTimeout(resolve, 2000) })])
  clearTimeout(timer)

  /** The L1 entry if it may still be served: always while the bus is healthy, briefly otherwise. */
  const local = (key: string): { v: unknown } | undefined => {
    const entry = l1.get(key)
    if (entry && !bus.healthy() && performance.now() - entry.at > DEGRADED_TTL_MS) {
      l1.delete(key)
      return undefined
    }
    return entry
  }

  async function sendInvalidation (keys: string[], from?: string): Promise<void> {
    let sent = true
    if (redis) {
      // On a cluster the keys live on different slots: one DEL each (auto-pipelined per node).
      try {
        if (redisConfig?.cluster) await Promise.all(keys.map((key) => redis.del(ns(key))))
        else await redis.del(...keys.map(ns))
      } catch { sent = false }
    }
    // A silent bus would hold the caller until the publish times out: queue it for recovery.
    if (!bus.healthy()) sent = false
    else {
      try { await bus.publish(INVALIDATE_TOPIC, from ? { keys, from } : { keys }) } catch { sent = false }
    }
    if (sent) for (const key of keys) unsent.delete(key)
    else for (const key of keys) unsent.add(key)
  }

  const stopHealth = bus.onHealthChange((healthy) => {
    if (!healthy) return
    l1.clear()
    if (unsent.size > 0) void sendInvalidation([...unsent])
  })

  return {
    kind: redis ? 'redis' : 'memory',
    redis,
    getLocal<T> (key: string) {
      const entry = local(key)
      if (entry) { stats.hit('l1'); return entry.v as T }
      return undefined
    },
    async get<T> (key: string) {
      const entry = local(key)
      if (entry) { stats.hit('l1'); return entry.v as T }
      stats.miss('l1')
      if (!redis || !bus.healthy()) return undefined
      try {
        const raw = await redis.get(ns(key))
        if (raw === null) { stats.miss('l2'); return undefined }
        stats.hit('l2')
        const value = JSON.parse(raw) as T
        l1.set(key, { v: value, at: performance.now() })
        return value
      } catch {
        // Redis down: behave as a miss; the caller reads PostgreSQL.
        stats.miss('l2')
        return undefined
      }
    },
    async set (key, value, ttlSeconds) {
      l1.set(key, { v: value, at: performance.now() })
      if (!redis) return
      try { await redis.set(ns(key), JSON.stringify(value), 'EX', ttlSeconds) } catch { /* degraded: L1 only */ }
    },
    async invalidate (keys) {
      if (keys.length === 0) return
      for (const key of keys) l1.delete(key)
      // A change that committed must not fail because Redis is down: peers that cannot hear us
      // serve L1 for at most DEGRADED_TTL_MS and empty it on recovery, when we send this again.
      await sendInvalidation(keys)
    },
    async replace (key, value) {
      l1.set(key, { v: value, at: performance.now() })
      // Not sent (Redis down): sent again on recovery as a plain invalidation, which also drops
      // this copy; L1 is emptied then anyway.
      await sendInvalidation([key], origin)
    },
    ping: () => redis ? pingRedis(redis) : Promise.resolve(0),
    async close () {
      stopHealth()
      await unsubscribe().catch(() => {})
      if (redis) redis.disconnect()
    }
  }
}
