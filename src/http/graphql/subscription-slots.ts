// Live subscriptions per credential (an API key, with every token issued from it), across sockets
// and instances: SUBSCRIPTIONS_PER_CREDENTIAL. With Redis each credential is a sorted set of its
// live subscriptions, scored by when their lease ends; each instance renews its own subscriptions'
// leases every LEASE_MS / 3, so the places of an instance that dies free themselves within
// LEASE_MS. Redis's clock scores every lease (instances' clocks may differ). While Redis is
// unreachable, and without Redis, each instance counts its own subscriptions (per-instance cap).
import { randomBytes } from 'node:crypto'
import { Cluster } from 'ioredis'
import type { RedisClient } from '../../infra/redis.ts'

export interface ISubscriptionSlots {
  /** Takes a place for subscription `id` of `credential`; false when all `cap` are taken. */
  take (credential: string, id: string): Promise<boolean>
  /** Gives the place back (idempotent). */
  release (credential: string, id: string): void
  close (): void
}

/** How long a subscription's place lasts in Redis without renewal, in ms. */
export const LEASE_MS = 30_000
/** Members renewed per script call. */
const RENEW_CHUNK = 500

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

// ARGV: cap, lease ms, member.
const TAKE_SCRIPT = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`

// ARGV: lease ms, members…: live here, so kept (or put back after an outage) whatever the count.
const RENEW_SCRIPT = `${NOW}
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`

export function createSubscriptionSlots (redis: RedisClient | undefined, prefix: string, cap: number): ISubscriptionSlots {
  /** This instance's live subscriptions, by credential. */
  const local = new Map<string, Set<string>>()
  const instance = randomBytes(6).toString('hex')
  const key = (credential: string) => `${prefix}${credential}`
  const member = (id: string) => `${instance}:${id}`

  function remember (credential: string, id: string) {
    const set = local.get(credential) ?? new Set<string>()
    local.set(credential, set)
    set.add(id)
  }

  async function renew () {
    if (!redis) return
    const calls: Array<Promise<unknown>> = []
    for (const [credential, ids] of local) {
      const members = [...ids].map(member)
      for (let i = 0; i < members.length; i += RENEW_CHUNK) {
        calls.push(redis.eval(RENEW_SCRIPT, 1, key(credential), String(LEASE_MS), ...members.slice(i, i + RENEW_CHUNK)))
      }
    }
    // Auto-pipelining sends them together (per node on a cluster); a failure waits for the next round.
    await Promise.allSettled(calls)
  }
  const timer = redis ? setInterval(() => { void renew() }, LEASE_MS / 3) : undefined
  timer?.unref()

  return {
    async take (credential, id) {
      const mine = local.get(credential)
      if (mine?.has(id)) return true
      if (redis) {
        try {
          const ok = await redis.eval(TAKE_SCRIPT, 1, key(credential), String(cap), String(LEASE_MS), member(id)) as number
          if (ok !== 1) return false
          remember(credential, id)
          return true
        } catch {
          // Redis unreachable: this instance's own count decides (renewal puts it in Redis later).
        }
      }
      if ((local.get(credential)?.size ?? 0) >= cap) return false
      remember(credential, id)
      return true
    },
    release (credential, id) {
      const set = local.get(credential)
      if (!set?.delete(id)) return
      if (set.size === 0) local.delete(credential)
      // Lost on a Redis failure: the lease ends the place within LEASE_MS.
      redis?.zrem(key(credential), member(id)).catch(() => {})
    },
    close () {
      if (timer) clearInterval(timer)
      if (!redis || local.size === 0) return
      // Closing sockets release one by one; whatever is left goes in one round.
      const calls = [...local].flatMap(([credential, ids]) => [...ids].map((id) => [key(credential), member(id)] as const))
      local.clear()
      if (redis instanceof Cluster) for (const [k, m] of calls) redis.zrem(k, m).catch(() => {})
      else {
        const pipeline = redis.pipeline()
        for (const [k, m] of calls) pipeline.zrem(k, m)
        pipeline.exec().catch(() => {})
      }
    }
  }
}
