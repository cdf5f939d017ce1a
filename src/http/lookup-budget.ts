// The failed-lookup budget of the enumeration defence (rate-limit.ts): how many NOT_FOUND answers
// one address may get per window. A public call holds its units before it runs and settles them
// once answered: kept (spent) when the answer was NOT_FOUND, freed otherwise. spent + held never
// passes the limit, so however many calls run at once, on however many instances, at most `limit`
// of them can answer NOT_FOUND in a window.
// With Redis each hold is one atomic script, so the budget is exact across instances (a small
// limit leaves no share to count locally); settlements of one event-loop turn go in one pipeline.
// While Redis is unreachable each instance holds in memory, starting from the spent count it last
// saw, and sends what was spent meanwhile once Redis answers again.
import { randomBytes } from 'node:crypto'
import { Cluster } from 'ioredis'
import type { RedisClient } from '../infra/redis.ts'

export interface Hold {
  /** Ends the hold: `kept` of its units stay spent (the NOT_FOUND answers), the rest are freed. Only the first call counts. */
  settle (kept: number): void
}

export type HoldAnswer =
  | { held: true, hold: Hold }
  /** Refused: `spent` says whether waiting can help (spent + units ≤ limit: only holds are in the way). */
  | { held: false, spent: number, ttlMs: number }

export interface ILookupBudget {
  /** Holds `units` of the key's budget if spent + held + units ≤ limit. Never throws. */
  tryHold (key: string, units: number, limit: number, windowMs: number): Promise<HoldAnswer>
  /** Resolves once a hold on `key` settled here (its units are free for the next try), or after `ms`. */
  settled (key: string, ms: number): Promise<void>
  close (): void
}

/** How often failed settlements and what was spent during an outage are retried, in ms. */
const RETRY_MS = 100
/** How often windows that ended are forgotten, in ms. */
const SWEEP_MS = 10_000
/** Holds asked for in one script call, at most. */
const ASK_CHUNK = 500

// The hash holds the window's id (w), spent units (s) and held units (h); its expiry is the window.
// ARGV: window ms, limit, a new window id, then the units each call of the batch asks for: each is
// held if it still fits, in order. Answers spent, ttl, window id, then 1 (held) or 0 per call.
const HOLD_SCRIPT = `local w = redis.call('HGET', KEYS[1], 'w')
if not w then
  w = ARGV[3]
  redis.call('HSET', KEYS[1], 'w', w, 's', 0, 'h', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local s = tonumber(redis.call('HGET', KEYS[1], 's'))
local free = tonumber(ARGV[2]) - s - tonumber(redis.call('HGET', KEYS[1], 'h'))
local answer = {s, redis.call('PTTL', KEYS[1]), w}
local add = 0
for i = 4, #ARGV do
  local units = tonumber(ARGV[i])
  if units <= free then
    free = free - units
    add = add + units
    answer[#answer + 1] = 1
  else
    answer[#answer + 1] = 0
  end
end
if add > 0 then redis.call('HINCRBY', KEYS[1], 'h', add) end
return answer`

// ARGV[2] = the window the holds were taken in; '*' = units spent while Redis was unreachable,
// added to whichever window is current. Holds of a window that ended ended with it.
const SETTLE_SCRIPT = `local w = redis.call('HGET', KEYS[1], 'w')
if ARGV[2] == '*' then
  if not w then
    redis.call('HSET', KEYS[1], 'w', ARGV[5], 's', 0, 'h', 0)
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
  redis.call('HINCRBY', KEYS[1], 's', ARGV[4])
  return 1
end
if w ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[1], 'h', -tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[1], 's', ARGV[4])
return 1`

const windowId = () => randomBytes(6).toString('hex')

function onceOnly (settle: (kept: number) => void): Hold {
  let done = false
  return { settle: (kept) => { if (!done) { done = true; settle(kept) } } }
}

/** Waiters for a settlement, by key. */
function signals () {
  const waiting = new Map<string, Set<() => void>>()
  return {
    wait (key: string, ms: number): Promise<void> {
      return new Promise((resolve) => {
        const set = waiting.get(key) ?? new Set()
        waiting.set(key, set)
        const done = () => {
          clearTimeout(timer)
          set.delete(done)
          if (set.size === 0 && waiting.get(key) === set) waiting.delete(key)
          resolve()
        }
        const timer = setTimeout(done, Math.max(ms, 0))
        set.add(done)
      })
    },
    notify (key: string) { for (const done of [...waiting.get(key) ?? []]) done() },
    close () { for (const set of waiting.values()) for (const done of [...set]) done() }
  }
}

interface LocalWindow { spent: number, held: number, resetAt: number }

interface Settlement { key: string, w: string, freed: number, kept: number, windowMs: number }

type Signals = ReturnType<typeof signals>

/** The budget in this process's memory: without Redis, and as the fallback while it is down. */
function memoryBudget (signal: Signals, onSpent?: (key: string, kept: number, windowMs: number) => void) {
  const windows = new Map<string, LocalWindow>()
  const sweeper = setInterval(() => {
    const now = Date.now()
    for (const [key, w] of windows) if (w.resetAt <= now) windows.delete(key)
  }, SWEEP_MS)
  sweeper.unref()
  return {
    /** `seed`: units already spent in this window, as last seen in Redis. */
    tryHold (key: string, units: number, limit: number, windowMs: number, seed?: { spent: number, resetAt: number }): HoldAnswer {
      const now = Date.now()
      let w = windows.get(key)
      if (!w || w.resetAt <= now) {
        w = seed && seed.resetAt > now ? { spent: seed.spent, held: 0, resetAt: seed.resetAt } : { spent: 0, held: 0, resetAt: now + windowMs }
        windows.set(key, w)
      }
      if (w.spent + w.held + units > limit) return { held: false, spent: w.spent, ttlMs: w.resetAt - now }
      w.held += units
      const mine = w
      return {
        held: true,
        hold: onceOnly((kept) => {
          // A window that ended took its holds with it.
          if (windows.get(key) === mine && mine.resetAt > Date.now()) {
            mine.held -= units
            mine.spent += kept
          }
          if (kept > 0) onSpent?.(key, kept, windowMs)
          signal.notify(key)
        })
      }
    },
    close () { clearInterval(sweeper) }
  }
}

function redisBudget (redis: RedisClient, prefix: string): ILookupBudget {
  const signal = signals()
  /** The spent count each key had when Redis last answered, to start from during an outage. */
  const seen = new Map<string, { spent: number, resetAt: number }>()
  /** Settlements not yet sent, by window and key; w = '*': units spent during an outage. */
  let pending = new Map<string, Settlement>()
  const local = memoryBudget(signal, (key, kept, windowMs) => {
    requeue({ key, w: '*', freed: 0, kept, windowMs })
    schedule(RETRY_MS)
  })

  let timer: NodeJS.Timeout | undefined
  let immediate: NodeJS.Immediate | undefined
  let flushing = false
  let closed = false
  function schedule (delayMs: number) {
    if (closed) return
    if (delayMs === 0) { immediate ??= setImmediate(() => { immediate = undefined; void flush() }); return }
    if (!timer) { timer = setTimeout(() => { timer = undefined; void flush() }, delayMs); timer.unref() }
  }

  async function flush () {
    if (flushing) { schedule(RETRY_MS); return }
    flushing = true
    const batch = [...pending.values()]
    pending = new Map()
    try {
      if (batch.length === 0) return
      const args = batch.map((s) => [`${prefix}${s.key}`, String(s.windowMs), s.w, String(s.freed), String(s.kept), windowId()])
      let results: Array<Error | null>
      if (redis instanceof Cluster) {
        // A cluster pipeline must stay on one node: each call on its own (auto-pipelined per node).
        results = (await Promise.allSettled(args.map(([k, ...a]) => redis.eval(SETTLE_SCRIPT, 1, k!, ...a))))
          .map((r) => r.status === 'fulfilled' ? null : r.reason as Error)
      } else {
        const pipeline = redis.pipeline()
        for (const [k, ...a] of args) pipeline.eval(SETTLE_SCRIPT, 1, k!, ...a)
        results = ((await pipeline.exec()) ?? []).map(([error]) => error)
        while (results.length < args.length) results.push(new Error('no result'))
      }
      results.forEach((error, i) => { if (error) requeue(batch[i]!) })
    } catch {
      for (const item of batch) requeue(item)
    } finally {
      flushing = false
      for (const item of batch) signal.notify(item.key)
      if (pending.size > 0) schedule(RETRY_MS)
    }
  }

  function requeue (item: Settlement) {
    const id = `${item.w}\u0000${item.key}`
    const queued = pending.get(id)
    if (queued) { queued.freed += item.freed; queued.kept += item.kept } else pending.set(id, { ...item })
  }

  // Holds asked for in one turn of the event loop go as one script per key (a burst from one
  // address is one round trip), and every key's script in one write (auto-pipelining).
  interface Asked { key: string, limit: number, windowMs: number, calls: Array<{ units: number, resolve: (answer: HoldAnswer) => void }> }
  let asking = new Map<string, Asked>()
  let askTick: NodeJS.Immediate | undefined
  function ask () {
    askTick = undefined
    const batches = [...asking.values()]
    asking = new Map()
    for (const batch of batches) {
      for (let i = 0; i < batch.calls.length; i += ASK_CHUNK) void askRedis({ ...batch, calls: batch.calls.slice(i, i + ASK_CHUNK) })
    }
  }

  async function askRedis ({ key, limit, windowMs, calls }: Asked) {
    const now = Date.now()
    let answer: Array<number | string>
    try {
      answer = await redis.eval(HOLD_SCRIPT, 1, `${prefix}${key}`, String(windowMs), String(limit), windowId(), ...calls.map((c) => String(c.units))) as Array<number | string>
    } catch {
      for (const call of calls) call.resolve(local.tryHold(key, call.units, limit, windowMs, seen.get(key)))
      return
    }
    const spent = Number(answer[0])
    const ttl = Number(answer[1])
    const w = String(answer[2])
    const ttlMs = ttl > 0 ? ttl : windowMs
    seen.set(key, { spent, resetAt: now + ttlMs })
    calls.forEach(({ units, resolve }, i) => {
      if (Number(answer[3 + i]) !== 1) return resolve({ held: false, spent, ttlMs })
      resolve({
        held: true,
        hold: onceOnly((kept) => {
          requeue({ key, w, freed: units, kept, windowMs })
          schedule(0)
        })
      })
    })
  }

  const sweeper = setInterval(() => {
    const now = Date.now()
    for (const [key, s] of seen) if (s.resetAt <= now) seen.delete(key)
  }, SWEEP_MS)
  sweeper.unref()

  return {
    tryHold (key, units, limit, windowMs) {
      return new Promise<HoldAnswer>((resolve) => {
        const id = `${limit}\u0000${windowMs}\u0000${key}`
        const batch = asking.get(id) ?? { key, limit, windowMs, calls: [] }
        asking.set(id, batch)
        batch.calls.push({ units, resolve })
        askTick ??= setImmediate(ask)
      })
    },
    settled: (key, ms) => signal.wait(key, ms),
    close () {
      closed = true
      for (const batch of asking.values()) for (const call of batch.calls) call.resolve(local.tryHold(batch.key, call.units, batch.limit, batch.windowMs))
      asking.clear()
      if (timer) clearTimeout(timer)
      if (immediate) clearImmediate(immediate)
      if (askTick) clearImmediate(askTick)
      clearInterval(sweeper)
      local.close()
      signal.close()
    }
  }
}

export function createLookupBudget (redis: RedisClient | undefined, prefix: string): ILookupBudget {
  if (redis) return redisBudget(redis, prefix)
  const signal = signals()
  const budget = memoryBudget(signal)
  return {
    tryHold: async (key, units, limit, windowMs) => budget.tryHold(key, units, limit, windowMs),
    settled: (key, ms) => signal.wait(key, ms),
    close () { budget.close(); signal.close() }
  }
}
