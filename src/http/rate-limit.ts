// Abuse protection beyond @fastify/rate-limit's per-IP default (registered in app.ts):
// - VALIDATE_RATE_LIMIT per IP, one budget shared by the public REST routes (validate, usage,
//   release) and the public GraphQL mutations (validateSerial, recordUsage, releaseDevice,
//   issueLicenseCertificate); each aliased occurrence in one document counts, so batching does not
//   multiply the budget. (The REST routes also carry @fastify/rate-limit's per-route limit.)
// - quotaPerMinute per client for calls authenticated with that client's (MANAGER) credentials.
// - failed-lookup throttling (enumeration defence): at most FAILED_LOOKUP_LIMIT (config) NOT_FOUND answers
//   per IP within FAILED_LOOKUP_WINDOW_MS, over every public operation and transport. Each public
//   call holds a unit of that budget before it runs and gives it back unless it answered NOT_FOUND
//   (lookup-budget.ts), so a burst cannot pass more than the limit; a call that finds the budget
//   held by calls still running waits for them (at most HOLD_WAIT_MS), so legitimate bursts pass.
//   Once the budget is spent, every public call from the IP is RATE_LIMITED until the window ends.
// Counters are fixed windows in Redis when configured (shared by every instance, synced in the
// background: see redisCounter), else in memory. While Redis is down they go on in memory, so every
// limit (the failed-lookup one included) holds per instance until it is back.
// The public REST calls are recognised by the route that handles them (routeOptions.url), never by
// the URL text, which percent-escapes, `#…` and `?…` can spell many ways.
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Cluster } from 'ioredis'
import type { RedisClient } from '../infra/redis.ts'
import { Kind, type DocumentNode, type OperationDefinitionNode } from 'graphql'
import { eq } from 'drizzle-orm'
import { clients } from '../../schema/index.ts'
import { RateLimitError, ValidationError } from '../kernel/errors.ts'
import { DEFAULT_FAILED_LOOKUP_LIMIT } from '../config/config.ts'
import { executedRootFields } from './graphql/document-limits.ts'
import { rootOutcome } from './graphql/root-outcomes.ts'
import { createLookupBudget, type Hold } from './lookup-budget.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** One request against the client's quotaPerMinute (none set: free); throws RATE_LIMITED past it. */
    chargeClientQuota (clientId: string): Promise<void>
  }
  interface FastifyRequest {
    /** The failed-lookup unit a public REST call holds until it is answered (null: none). */
    lookupHold: Hold | null
  }
}

/** NOT_FOUND answers per IP per window (FAILED_LOOKUP_LIMIT's default); public calls of one IP running at once, at most. */
export const FAILED_LOOKUP_LIMIT = DEFAULT_FAILED_LOOKUP_LIMIT
/** Window of the failed-lookup counter, in ms. */
export const FAILED_LOOKUP_WINDOW_MS = 60_000
/** Window of the public-mutation and client-quota counters, in ms. */
export const WINDOW_MS = 60_000
/** GraphQL mutations open to anonymous callers: the serial number is the credential. */
export const PUBLIC_MUTATIONS = new Set(['validateSerial', 'recordUsage', 'releaseDevice', 'issueLicenseCertificate', 'heartbeat', 'licenseStatus'])
/** How long a client's quotaPerMinute is remembered on an instance, in ms. */
const QUOTA_CACHE_MS = 30_000
/** Longest a public call waits for the failed-lookup units other calls hold, in ms; then RATE_LIMITED. */
export const HOLD_WAIT_MS = 10_000
/** How often a waiting call tries again while the units in its way are held elsewhere, in ms. */
const HOLD_POLL_MS = 25
/** Calls of one IP waiting for failed-lookup units on one instance; more are RATE_LIMITED at once. */
const MAX_WAITING = 1000
/** Waiting calls that try for their units together, in line order. */
const WAIT_BATCH = 64

export interface WindowCount { count: number, ttlMs: number }

export interface IWindowCounter {
  /**
   * Adds `by` to the key's counter in the current window and returns the new total. `limit` is
   * the caller's threshold: with Redis, a hit far below it is counted locally and synced in the
   * background; near it (or on a key this instance has not seen) it waits for Redis.
   */
  hit (key: string, windowMs: number, by: number, limit: number): Promise<WindowCount>
  /** The key's total, from Redis when unknown here, then kept in sync in the background. */
  peek (key: string, limit: number): Promise<WindowCount>
  close (): void
}

/** How often pending local counts go to Redis and the shared totals come back, in ms. */
export const SYNC_MS = 100

// by > 0: add and return the total (starting the window on the first hit); by = 0: read only.
const SYNC_SCRIPT = `local by = tonumber(ARGV[2])
local c
if by > 0 then
  c = redis.call('INCRBY', KEYS[1], by)
  if c == by then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
else
  c = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local t = redis.call('PTTL', KEYS[1])
return {c, t}`

interface Entry {
  windowMs: number
  /** Total in Redis as of the last answer, including this instance's hits it saw. */
  shared: number
  /** Local hits not yet sent to Redis. */
  pending: number
  /** Local hits sent in the flush now under way. */
  inFlight: number
  resetAt: number
  usedAt: number
  syncedAt: number
}

/** A key not synced for this long is read from Redis again on its next use, in ms. */
const READ_REFRESH_MS = 1000
/** How often keys whose window ended or that went unused are forgotten, in ms. */
const SWEEP_MS = 10_000

/**
 * Fixed-window counters shared through Redis without a round trip per request (the approach
 * Unkey describes): each instance counts locally and every SYNC_MS sends its pending counts and
 * reads the shared totals back in one pipeline. While a key's estimate stays below half its
 * limit the caller is answered from memory; above that, or for a key this instance has not seen
 * in the current window, or one not synced for READ_REFRESH_MS, the hit waits for Redis, so small
 * limits stay exact across instances. Only keys with something to send are synced each tick.
 * The price: N instances together may overshoot a large limit by what they admit in one SYNC_MS.
 * Redis errors fail open (as @fastify/rate-limit's skipOnError) and leave the counts local.
 */
function redisCounter (redis: RedisClient, prefix: string): IWindowCounter {
  const entries = new Map<string, Entry>()
  const run = (key: string, windowMs: number, by: number) =>
    redis.eval(SYNC_SCRIPT, 1, `${prefix}${key}`, String(windowMs), String(by)) as Promise<[number, number]>

  function live (key: string, now: number): Entry | undefined {
    const entry = entries.get(key)
    return entry && entry.resetAt > now ? entry : undefined
  }

  function absorb (entry: Entry, [count, ttl]: [number, number], now: number) {
    entry.shared = count
    entry.syncedAt = now
    entry.resetAt = now + (ttl > 0 ? ttl : entry.windowMs)
  }

  async function exact (key: string, windowMs: number, by: number, now: number): Promise<WindowCount> {
    let entry = entries.get(key)
    if (!entry || (entry.resetAt <= now && entry.inFlight === 0)) {
      entry = { windowMs, shared: 0, pending: 0, inFlight: 0, resetAt: now + windowMs, usedAt: now, syncedAt: 0 }
      entries.set(key, entry)
    }
    entry.usedAt = now
    const send = by + entry.pending
    entry.pending = 0
    entry.inFlight += send
    let result: [number, number]
    try {
      result = await run(key, windowMs, send)
    } catch {
      entry.inFlight -= send
      entry.pending += send // keep counting locally; the next flush retries
      dirty.add(key)
      // This hit's place among the ones this instance counted, never the hits still in flight
      // (they come after it): concurrent hits of one burst see 1, 2, 3, … as they fail.
      return { count: entry.shared + entry.pending, ttlMs: Math.max(entry.resetAt - Date.now(), 0) }
    }
    entry.inFlight -= send
    absorb(entry, result, Date.now())
    // Redis ordered this hit among every instance's: the total it answered is this hit's place.
    // (Adding what is still in flight here counted each hit of a burst against all the others.)
    return { count: result[0], ttlMs: Math.max(entry.resetAt - Date.now(), 0) }
  }

  // Keys with something to send, or a read due: a flush touches only these, however many keys
  // the instance holds. A slower sweep forgets keys whose window ended or that went unused.
  const dirty = new Set<string>()
  let flushing = false
  async function flush () {
    if (flushing || dirty.size === 0) return
    flushing = true
    const now = Date.now()
    const batch: Array<[string, Entry, number]> = []
    // A cluster pipeline must stay on one node; each script touches one key, so on a cluster every
    // call goes on its own and auto-pipelining batches them per node.
    const pipeline = redis instanceof Cluster ? undefined : redis.pipeline()
    const evals: Array<Promise<[number, number]>> = []
    for (const key of dirty) {
      const entry = entries.get(key)
      if (!entry || entry.resetAt <= now) continue
      const send = entry.pending
      entry.pending = 0
      entry.inFlight += send
      batch.push([key, entry, send])
      if (pipeline) pipeline.eval(SYNC_SCRIPT, 1, `${prefix}${key}`, String(entry.windowMs), String(send))
      else evals.push(run(key, entry.windowMs, send))
    }
    dirty.clear()
    try {
      if (batch.length === 0) return
      const results = pipeline
        ? await pipeline.exec()
        : (await Promise.allSettled(evals)).map((r): [Error | null, unknown] => r.status === 'fulfilled' ? [null, r.value] : [r.reason as Error, null])
      const at = Date.now()
      batch.forEach(([key, entry, send], i) => {
        entry.inFlight -= send
        const [error, value] = results?.[i] ?? [new Error('no result')]
        if (error) { entry.pending += send; dirty.add(key) } else absorb(entry, value as [number, number], at)
      })
    } catch {
      for (const [key, entry, send] of batch) { entry.inFlight -= send; entry.pending += send; dirty.add(key) }
    } finally {
      flushing = false
    }
  }
  function sweep () {
    const now = Date.now()
    for (const [key, entry] of entries) {
      const idle = entry.resetAt <= now || now - entry.usedAt > entry.windowMs
      if (idle && entry.inFlight === 0 && (entry.pending === 0 || entry.resetAt <= now)) { entries.delete(key); dirty.delete(key) }
    }
  }
  const timer = setInterval(() => { void flush() }, SYNC_MS)
  timer.unref()
  const sweeper = setInterval(sweep, SWEEP_MS)
  sweeper.unref()

  return {
    async hit (key, windowMs, by, limit) {
      const now = Date.now()
      const entry = live(key, now)
      // Unknown here, or not synced for a second (idle keys are not refreshed in the background).
      if (!entry || now - entry.syncedAt >= READ_REFRESH_MS) return exact(key, windowMs, by, now)
      const estimate = entry.shared + entry.inFlight + entry.pending + by
      if (estimate * 2 >= limit) return exact(key, windowMs, by, now)
      entry.pending += by
      entry.usedAt = now
      dirty.add(key)
      return { count: estimate, ttlMs: entry.resetAt - now }
    },
    async peek (key, limit) {
      const now = Date.now()
      const entry = live(key, now)
      // Unknown here, or last read over a second ago: one read (zero included).
      if (!entry || now - entry.syncedAt >= READ_REFRESH_MS) return exact(key, entry?.windowMs ?? FAILED_LOOKUP_WINDOW_MS, 0, now)
      entry.usedAt = now
      const count = entry.shared + entry.inFlight + entry.pending
      if (count * 2 >= limit && count < limit) return exact(key, entry.windowMs, 0, now)
      return { count, ttlMs: entry.resetAt - now }
    },
    close () { clearInterval(timer); clearInterval(sweeper) }
  }
}

export function createWindowCounter (redis: RedisClient | undefined, prefix: string): IWindowCounter {
  if (redis) return redisCounter(redis, prefix)
  const windows = new Map<string, { count: number, resetAt: number }>()
  const current = (key: string) => {
    const entry = windows.get(key)
    if (entry && entry.resetAt > Date.now()) return entry
    if (entry) windows.delete(key)
    return undefined
  }
  return {
    async hit (key, windowMs, by) {
      if (windows.size > 100_000) for (const k of windows.keys()) current(k) // drop expired windows
      const entry = current(key) ?? { count: 0, resetAt: Date.now() + windowMs }
      entry.count += by
      windows.set(key, entry)
      return { count: entry.count, ttlMs: entry.resetAt - Date.now() }
    },
    async peek (key) {
      const entry = current(key)
      return entry ? { count: entry.count, ttlMs: entry.resetAt - Date.now() } : { count: 0, ttlMs: 0 }
    },
    close () {}
  }
}

type StoreCallback = (error: Error | null, result?: { current: number, ttl: number }) => void

/**
 * A @fastify/rate-limit store over a window counter, so the global per-IP limit is counted like
 * the others: locally, synced to Redis in the background, exact near the limit.
 */
export function windowStore (counter: IWindowCounter) {
  return class WindowStore {
    readonly prefix: string
    constructor (params: object = {}) {
      const route = (params as { routeInfo?: { method?: string, url?: string } }).routeInfo
      this.prefix = route?.url ? `${route.method ?? ''}${route.url}:` : 'g:'
    }

    incr (key: string, cb: StoreCallback, timeWindow: number, max: number): void {
      counter.hit(`${this.prefix}${key}`, timeWindow, 1, max).then(({ count, ttlMs }) => cb(null, { current: count, ttl: ttlMs }), (error: Error) => cb(error))
    }

    child (params: object) {
      return new WindowStore(params)
    }
  }
}

function limited (reply: FastifyReply | undefined, ttlMs: number, message: string): RateLimitError {
  const seconds = Math.max(1, Math.ceil(ttlMs / 1000))
  reply?.header('retry-after', String(seconds))
  return new RateLimitError(seconds, message)
}

/** The operation that will run: the named one, else the only one. */
function operationOf (document: DocumentNode, operationName: string | undefined): OperationDefinitionNode | undefined {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
  return ops.find((d) => !operationName || d.name?.value === operationName) ?? ops[0]
}

export default fp(async (app) => {
  const { config, cache, database } = app.deps
  const counter = createWindowCounter(cache.redis, `${config.redis?.prefix ?? 'serials'}:rlx:`)
  // Its own namespace: the hashes of the budget never meet the counters' strings.
  const budget = createLookupBudget(cache.redis, `${config.redis?.prefix ?? 'serials'}:rlb:`)
  app.addHook('onClose', async () => { counter.close(); budget.close() })
  const failedLookupLimit = config.failedLookupLimit
  const quotas = new Map<string, { quota: number | null, until: number }>()
  const publicPaths = new Set(['validate', 'usage', 'release', 'heartbeat'].map((p) => `${config.prefix}/serials/${p}`))

  async function quotaOf (clientId: string): Promise<number | null> {
    const cached = quotas.get(clientId)
    if (cached && cached.until > Date.now()) return cached.quota
    const [row] = await database.db.select({ quota: clients.quotaPerMinute }).from(clients).where(eq(clients.id, clientId)).limit(1)
    const quota = row?.quota ?? null
    quotas.set(clientId, { quota, until: Date.now() + QUOTA_CACHE_MS })
    return quota
  }

  interface Waiter { units: number, deadline: number, resolve: (hold: Hold) => void, refuse: (ttlMs: number) => void }
  /** Calls waiting for failed-lookup units, by key, first come first served. */
  const waiting = new Map<string, Waiter[]>()
  const pumping = new Set<string>()

  // One round at a time per key on this instance, however many calls wait: the first WAIT_BATCH
  // in line try together (one Redis call); when none got its units, the next settlement of a hold
  // here (or a short poll, for holds of other instances) starts the next round.
  async function pump (key: string, queue: Waiter[]) {
    if (pumping.has(key)) return
    pumping.add(key)
    try {
      while (queue.length > 0) {
        const round = queue.slice(0, WAIT_BATCH)
        const answers = await Promise.all(round.map((w) => budget.tryHold(key, w.units, failedLookupLimit, FAILED_LOOKUP_WINDOW_MS)))
        let granted = 0
        const now = Date.now()
        round.forEach((waiter, i) => {
          const answer = answers[i]!
          const done = answer.held ||
            // Spent: a waiter that cannot fit any more in this window is refused at once.
            answer.spent + waiter.units > failedLookupLimit || waiter.deadline <= now
          if (!done) return
          queue.splice(queue.indexOf(waiter), 1)
          if (answer.held) { granted++; waiter.resolve(answer.hold) } else waiter.refuse(answer.spent + waiter.units > failedLookupLimit ? answer.ttlMs : 1000)
        })
        if (granted === 0 && queue.length > 0) await budget.settled(key, Math.min(HOLD_POLL_MS, Math.max(queue[0]!.deadline - Date.now(), 0)))
      }
    } finally {
      pumping.delete(key)
      if (waiting.get(key) === queue && queue.length === 0) waiting.delete(key)
    }
  }

  /**
   * Holds `units` of the IP's failed-lookup budget for public calls about to run; throws
   * RATE_LIMITED once the budget is spent (or stays held by other calls for HOLD_WAIT_MS).
   */
  async function holdLookups (ip: string, units: number, reply: FastifyReply | undefined): Promise<Hold> {
    const key = `nf:${ip}`
    const refusal = (ttlMs: number) => limited(reply, ttlMs, 'Too many unknown serial numbers from this address; retry later')
    if (units > failedLookupLimit) throw new ValidationError(`A document may hold at most ${failedLookupLimit} public calls`)
    if (!waiting.has(key)) {
      const answer = await budget.tryHold(key, units, failedLookupLimit, FAILED_LOOKUP_WINDOW_MS)
      if (answer.held) return answer.hold
      if (answer.spent + units > failedLookupLimit) throw refusal(answer.ttlMs)
    }
    const queue = waiting.get(key) ?? []
    waiting.set(key, queue)
    if (queue.length >= MAX_WAITING) throw refusal(1000)
    return await new Promise<Hold>((resolve, reject) => {
      queue.push({ units, deadline: Date.now() + HOLD_WAIT_MS, resolve, refuse: (ttlMs) => reject(refusal(ttlMs)) })
      pump(key, queue).catch((error: unknown) => { for (const w of queue.splice(0)) w.refuse(1000); app.log.error({ err: error }, 'failed-lookup budget') })
    })
  }

  /** Holds the failed-lookup units, then spends the validation budget; a refusal frees the units. */
  async function admitPublicCalls (ip: string, calls: number, reply: FastifyReply | undefined): Promise<Hold> {
    const hold = await holdLookups(ip, calls, reply)
    try {
      // One budget for REST and GraphQL: switching transport does not double the allowance.
      const used = await counter.hit(`v:${ip}`, WINDOW_MS, calls, config.validateRateLimit)
      if (used.count > config.validateRateLimit) throw limited(reply, used.ttlMs, `Rate limit exceeded: ${config.validateRateLimit} validation and usage calls per minute`)
    } catch (error) {
      hold.settle(0)
      throw error
    }
    return hold
  }

  // Keyed on the route that handles the request, never on the URL text: the router decodes
  // percent-escapes and drops `#…`, so `/serials/%76alidate` reaches the validate handler too.
  const isPublicRest = (request: FastifyRequest) => request.method === 'POST' && publicPaths.has(request.routeOptions.url ?? '')

  /** One request against a client's quotaPerMinute; throws RATE_LIMITED past it. */
  async function chargeClientQuota (clientId: string, reply?: FastifyReply): Promise<void> {
    const quota = await quotaOf(clientId)
    if (quota === null) return
    const used = await counter.hit(`q:${clientId}`, WINDOW_MS, 1, quota)
    if (used.count > quota) throw limited(reply, used.ttlMs, `Client quota exceeded: ${quota} requests per minute`)
  }
  // Every operation sent over a GraphQL WebSocket counts as one request (ws-server.ts).
  app.decorate('chargeClientQuota', (clientId: string) => chargeClientQuota(clientId))
  app.decorateRequest('lookupHold', null)

  // Runs after the auth plugin's onRequest hook, so request.actor is known.
  app.addHook('onRequest', async (request, reply) => {
    const clientId = request.actor?.clientId
    if (clientId) await chargeClientQuota(clientId, reply)
    if (isPublicRest(request)) request.lookupHold = await admitPublicCalls(request.ip ?? 'inject', 1, reply)
  })

  // A public route's answer names its outcome in its own top-level `code` (a validation code:
  // `{ valid, code }`, `{ recorded, code }`, `{ alive, code }`); read from the object the handler
  // returned, never from the body text, where a device's info or metadata may spell anything.
  app.addHook('preSerialization', (request, _reply, payload, done) => {
    if (isPublicRest(request) && (payload as { code?: unknown } | null)?.code === 'NOT_FOUND') request.answeredNotFound = true
    done(null, payload)
  })

  // answeredNotFound: set above, or by the error handler for a NotFoundError (errors-plugin.ts).
  // The held unit stays spent for a NOT_FOUND answer and is given back for any other. (A request
  // that never reaches onSend keeps its unit until the window ends: counted, never lost.)
  app.addHook('onSend', async (request, _reply, payload) => {
    const hold = request.lookupHold
    if (hold) {
      request.lookupHold = null
      hold.settle(request.answeredNotFound ? 1 : 0)
    }
    return payload
  })

  type HookContext = { reply?: FastifyReply, request?: FastifyRequest, publicAliases?: Set<string>, operationName?: string, lookupHold?: Hold }

  app.graphql.addHook('preExecution', async (_schema, document, ctx, variables) => {
    const context = ctx as unknown as HookContext
    const operationName = context.operationName ?? (context.reply?.request.body as { operationName?: string } | undefined)?.operationName
    const op = operationOf(document, operationName ?? undefined)
    // Queries too: licenseStatus (the portal's read) is public and spends the same budget.
    if (op === undefined || op.operation === 'subscription') return
    // Count what will execute: one per response key after named and inline fragments are
    // resolved and @skip/@include applied. The response keys let onResolution find the answers.
    const aliases = new Set<string>()
    for (const field of executedRootFields(document, op, variables as Record<string, unknown> | undefined)) {
      if (PUBLIC_MUTATIONS.has(field.name.value)) aliases.add(field.alias?.value ?? field.name.value)
    }
    if (aliases.size === 0) return
    context.publicAliases = aliases
    const ip = context.request?.ip ?? context.reply?.request.ip ?? 'inject'
    context.lookupHold = await admitPublicCalls(ip, aliases.size, context.reply)
  })

  // What each public root field answered, whatever the caller selected and before the error
  // formatter rewrites errors (root-outcomes.ts): a NOT_FOUND as data or as an error keeps its unit.
  // (An execution that throws before resolving keeps its units until the window ends.)
  app.graphql.addHook('onResolution', async (_execution, ctx) => {
    const context = ctx as unknown as HookContext
    const hold = context.lookupHold
    if (!hold || !context.publicAliases) return
    context.lookupHold = undefined
    let notFound = 0
    for (const alias of context.publicAliases) if (rootOutcome(context, alias) === 'NOT_FOUND') notFound++
    hold.settle(notFound)
  })
}, { name: 'rate-limits', dependencies: ['errors', 'deps', 'auth', 'graphql'] })
