// Abuse protection beyond @fastify/rate-limit's per-IP default (registered in app.ts):
// - VALIDATE_RATE_LIMIT per IP, one budget shared by the public REST routes (validate, usage,
//   release) and the public GraphQL mutations (validateSerial, recordUsage, releaseDevice,
//   issueLicenseCertificate); each aliased occurrence in one document counts, so batching does not
//   multiply the budget. (The REST routes also carry @fastify/rate-limit's per-route limit.)
// - quotaPerMinute per client for calls authenticated with that client's (MANAGER) credentials.
// - failed-lookup throttling: an IP whose public calls produced FAILED_LOOKUP_LIMIT NOT_FOUND
//   answers within FAILED_LOOKUP_WINDOW_MS gets RATE_LIMITED on every public call until the window
//   ends (enumeration defence).
// Counters are fixed windows in Redis when configured (shared by every instance, synced in the
// background: see redisCounter), else in memory. While Redis is down they go on in memory, so every
// limit (the failed-lookup one included) holds per instance until it is back.
// The public REST calls are recognised by the route that handles them (routeOptions.url), never by
// the URL text, which percent-escapes, `#…` and `?…` can spell many ways.
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Cluster } from 'ioredis'
import type { RedisClient } from '../infra/redis.ts'
import { Kind, type DocumentNode, type ExecutionResult, type GraphQLError, type OperationDefinitionNode } from 'graphql'
import { eq } from 'drizzle-orm'
import { clients } from '../../schema/index.ts'
import { RateLimitError } from '../kernel/errors.ts'
import { executedRootFields } from './graphql/document-limits.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** One request against the client's quotaPerMinute (none set: free); throws RATE_LIMITED past it. */
    chargeClientQuota (clientId: string): Promise<void>
  }
}

/** NOT_FOUND answers per IP per window before public calls from that IP are refused. */
export const FAILED_LOOKUP_LIMIT = 20
/** Window of the failed-lookup counter, in ms. */
export const FAILED_LOOKUP_WINDOW_MS = 60_000
/** Window of the public-mutation and client-quota counters, in ms. */
export const WINDOW_MS = 60_000
/** GraphQL mutations open to anonymous callers: the serial number is the credential. */
export const PUBLIC_MUTATIONS = new Set(['validateSerial', 'recordUsage', 'releaseDevice', 'issueLicenseCertificate', 'heartbeat', 'licenseStatus'])
/** How long a client's quotaPerMinute is remembered on an instance, in ms. */
const QUOTA_CACHE_MS = 30_000

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
    try {
      absorb(entry, await run(key, windowMs, send), Date.now())
    } catch {
      entry.pending += send // keep counting locally; the next flush retries
      dirty.add(key)
    } finally {
      entry.inFlight -= send
    }
    return { count: entry.shared + entry.pending + entry.inFlight, ttlMs: Math.max(entry.resetAt - Date.now(), 0) }
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

/** How many NOT_FOUND answers a public GraphQL result holds. */
function notFoundCount (result: ExecutionResult, publicAliases: Set<string>): number {
  let n = 0
  for (const [key, value] of Object.entries(result.data ?? {})) {
    if (publicAliases.has(key) && (value as { code?: string } | null)?.code === 'NOT_FOUND') n++
  }
  for (const error of (result.errors ?? []) as GraphQLError[]) {
    const root = error.path?.[0]
    const code = (error.originalError as { code?: string } | undefined)?.code
    if (typeof root === 'string' && publicAliases.has(root) && code === 'NOT_FOUND') n++
  }
  return n
}

export default fp(async (app) => {
  const { config, cache, database } = app.deps
  const counter = createWindowCounter(cache.redis, `${config.redis?.prefix ?? 'serials'}:rlx:`)
  app.addHook('onClose', async () => counter.close())
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

  async function checkFailedLookups (ip: string, reply: FastifyReply | undefined): Promise<void> {
    const failed = await counter.peek(`nf:${ip}`, FAILED_LOOKUP_LIMIT)
    if (failed.count >= FAILED_LOOKUP_LIMIT) throw limited(reply, failed.ttlMs, 'Too many unknown serial numbers from this address; retry later')
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

  // Runs after the auth plugin's onRequest hook, so request.actor is known.
  app.addHook('onRequest', async (request, reply) => {
    const clientId = request.actor?.clientId
    if (clientId) await chargeClientQuota(clientId, reply)
    if (isPublicRest(request)) {
      const ip = request.ip ?? 'inject'
      await checkFailedLookups(ip, reply)
      // One budget for REST and GraphQL: switching transport does not double the allowance.
      const used = await counter.hit(`v:${ip}`, WINDOW_MS, 1, config.validateRateLimit)
      if (used.count > config.validateRateLimit) throw limited(reply, used.ttlMs, `Rate limit exceeded: ${config.validateRateLimit} validation and usage calls per minute`)
    }
  })

  // A public route's answer names its outcome in its own top-level `code` (a validation code:
  // `{ valid, code }`, `{ recorded, code }`, `{ alive, code }`); read from the object the handler
  // returned, never from the body text, where a device's info or metadata may spell anything.
  app.addHook('preSerialization', (request, _reply, payload, done) => {
    if (isPublicRest(request) && (payload as { code?: unknown } | null)?.code === 'NOT_FOUND') request.answeredNotFound = true
    done(null, payload)
  })

  // answeredNotFound: set above, or by the error handler for a NotFoundError (errors-plugin.ts).
  app.addHook('onSend', async (request, _reply, payload) => {
    if (isPublicRest(request) && request.answeredNotFound) await counter.hit(`nf:${request.ip ?? 'inject'}`, FAILED_LOOKUP_WINDOW_MS, 1, FAILED_LOOKUP_LIMIT)
    return payload
  })

  type HookContext = { reply?: FastifyReply, request?: FastifyRequest, publicAliases?: Set<string>, operationName?: string }

  app.graphql.addHook('preExecution', async (_schema, document, ctx, variables) => {
    const context = ctx as unknown as HookContext
    const operationName = context.operationName ?? (context.reply?.request.body as { operationName?: string } | undefined)?.operationName
    const op = operationOf(document, operationName ?? undefined)
    // Queries too: licenseStatus (the portal's read) is public and spends the same budget.
    if (op === undefined || op.operation === 'subscription') return
    // Count what will execute: one per response key after named and inline fragments are
    // resolved and @skip/@include applied. The response keys let onResolution find the answers.
    const aliases = new Set<string>()
    let publicCalls = 0
    for (const field of executedRootFields(document, op, variables as Record<string, unknown> | undefined)) {
      if (PUBLIC_MUTATIONS.has(field.name.value)) {
        aliases.add(field.alias?.value ?? field.name.value)
        publicCalls++
      }
    }
    if (publicCalls === 0) return
    context.publicAliases = aliases
    const ip = context.request?.ip ?? context.reply?.request.ip ?? 'inject'
    await checkFailedLookups(ip, context.reply)
    const used = await counter.hit(`v:${ip}`, WINDOW_MS, publicCalls, config.validateRateLimit)
    if (used.count > config.validateRateLimit) throw limited(context.reply, used.ttlMs, `Rate limit exceeded: ${config.validateRateLimit} validation and usage calls per minute`)
  })

  app.graphql.addHook('onResolution', async (execution, ctx) => {
    const context = ctx as unknown as HookContext
    if (!context.publicAliases?.size) return
    const n = notFoundCount(execution, context.publicAliases)
    const ip = context.request?.ip ?? context.reply?.request.ip ?? 'inject'
    if (n > 0) await counter.hit(`nf:${ip}`, FAILED_LOOKUP_WINDOW_MS, n, FAILED_LOOKUP_LIMIT)
  })
}, { name: 'rate-limits', dependencies: ['errors', 'deps', 'auth', 'graphql'] })
