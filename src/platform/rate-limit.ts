// Abuse protection beyond @fastify/rate-limit's per-IP default (registered in app.ts):
// - VALIDATE_RATE_LIMIT per IP, one budget shared by the public REST routes (validate, usage,
//   release) and the public GraphQL mutations (validateSerial, recordUsage, releaseDevice,
//   issueLicenseCertificate); each aliased occurrence in one document counts, so batching does not
//   multiply the budget. (The REST routes also carry @fastify/rate-limit's per-route limit.)
// - quotaPerMinute per client for calls authenticated with that client's (MANAGER) credentials.
// - failed-lookup throttling: an IP whose public calls produced FAILED_LOOKUP_LIMIT NOT_FOUND
//   answers within FAILED_LOOKUP_WINDOW_MS gets RATE_LIMITED on every public call until the window
//   ends (enumeration defence).
// Counters are fixed windows in Redis when configured (shared by every instance), else in memory.
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import { Kind, type DocumentNode, type ExecutionResult, type GraphQLError, type OperationDefinitionNode } from 'graphql'
import { eq } from 'drizzle-orm'
import { clients } from '../../schema/index.ts'
import { RateLimitError } from './errors.ts'

/** NOT_FOUND answers per IP per window before public calls from that IP are refused. */
export const FAILED_LOOKUP_LIMIT = 20
/** Window of the failed-lookup counter, in ms. */
export const FAILED_LOOKUP_WINDOW_MS = 60_000
/** Window of the public-mutation and client-quota counters, in ms. */
export const WINDOW_MS = 60_000
/** GraphQL mutations open to anonymous callers: the serial number is the credential. */
export const PUBLIC_MUTATIONS = new Set(['validateSerial', 'recordUsage', 'releaseDevice', 'issueLicenseCertificate'])
/** Seconds a client's quotaPerMinute is remembered on an instance. */
const QUOTA_CACHE_MS = 30_000

export interface WindowCount { count: number, ttlMs: number }

export interface IWindowCounter {
  /** Adds `by` to the key's counter in the current window and returns the new total. */
  hit (key: string, windowMs: number, by?: number): Promise<WindowCount>
  peek (key: string): Promise<WindowCount>
}

const HIT_SCRIPT = `local c = redis.call('INCRBY', KEYS[1], ARGV[2])
if c == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('PTTL', KEYS[1])
return {c, t}`

export function createWindowCounter (redis: Redis | undefined, prefix: string): IWindowCounter {
  if (redis) {
    return {
      async hit (key, windowMs, by = 1) {
        try {
          const [count, ttl] = await redis.eval(HIT_SCRIPT, 1, `${prefix}${key}`, String(windowMs), String(by)) as [number, number]
          return { count, ttlMs: ttl > 0 ? ttl : windowMs }
        } catch {
          // Redis unavailable: fail open, as @fastify/rate-limit does with skipOnError.
          return { count: 0, ttlMs: 0 }
        }
      },
      async peek (key) {
        try {
          const [raw, ttl] = await Promise.all([redis.get(`${prefix}${key}`), redis.pttl(`${prefix}${key}`)])
          return { count: raw === null ? 0 : Number(raw), ttlMs: Math.max(ttl, 0) }
        } catch {
          return { count: 0, ttlMs: 0 }
        }
      }
    }
  }
  const windows = new Map<string, { count: number, resetAt: number }>()
  const current = (key: string) => {
    const entry = windows.get(key)
    if (entry && entry.resetAt > Date.now()) return entry
    if (entry) windows.delete(key)
    return undefined
  }
  return {
    async hit (key, windowMs, by = 1) {
      if (windows.size > 100_000) for (const k of windows.keys()) current(k) // drop expired windows
      const entry = current(key) ?? { count: 0, resetAt: Date.now() + windowMs }
      entry.count += by
      windows.set(key, entry)
      return { count: entry.count, ttlMs: entry.resetAt - Date.now() }
    },
    async peek (key) {
      const entry = current(key)
      return entry ? { count: entry.count, ttlMs: entry.resetAt - Date.now() } : { count: 0, ttlMs: 0 }
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
  const quotas = new Map<string, { quota: number | null, until: number }>()
  const publicPaths = new Set(['validate', 'usage', 'release'].map((p) => `${config.prefix}/serials/${p}`))

  async function quotaOf (clientId: string): Promise<number | null> {
    const cached = quotas.get(clientId)
    if (cached && cached.until > Date.now()) return cached.quota
    const [row] = await database.db.select({ quota: clients.quotaPerMinute }).from(clients).where(eq(clients.id, clientId)).limit(1)
    const quota = row?.quota ?? null
    quotas.set(clientId, { quota, until: Date.now() + QUOTA_CACHE_MS })
    return quota
  }

  async function checkFailedLookups (ip: string, reply: FastifyReply | undefined): Promise<void> {
    const failed = await counter.peek(`nf:${ip}`)
    if (failed.count >= FAILED_LOOKUP_LIMIT) throw limited(reply, failed.ttlMs, 'Too many unknown serial numbers from this address; retry later')
  }

  const isPublicRest = (request: FastifyRequest) => request.method === 'POST' && publicPaths.has(request.url.split('?')[0]!)

  // Runs after the auth plugin's onRequest hook, so request.actor is known.
  app.addHook('onRequest', async (request, reply) => {
    const clientId = request.actor?.clientId
    if (clientId) {
      const quota = await quotaOf(clientId)
      if (quota !== null) {
        const used = await counter.hit(`q:${clientId}`, WINDOW_MS)
        if (used.count > quota) throw limited(reply, used.ttlMs, `Client quota exceeded: ${quota} requests per minute`)
      }
    }
    if (isPublicRest(request)) {
      const ip = request.ip ?? 'inject'
      await checkFailedLookups(ip, reply)
      // One budget for REST and GraphQL: switching transport does not double the allowance.
      const used = await counter.hit(`v:${ip}`, WINDOW_MS)
      if (used.count > config.validateRateLimit) throw limited(reply, used.ttlMs, `Rate limit exceeded: ${config.validateRateLimit} validation and usage calls per minute`)
    }
  })

  app.addHook('onSend', async (request, reply, payload) => {
    if (!isPublicRest(request)) return payload
    const notFound = reply.statusCode === 404 || (typeof payload === 'string' && payload.includes('"code":"NOT_FOUND"'))
    if (notFound) await counter.hit(`nf:${request.ip ?? 'inject'}`, FAILED_LOOKUP_WINDOW_MS)
    return payload
  })

  type HookContext = { reply?: FastifyReply, request?: FastifyRequest, publicAliases?: Set<string> }

  app.graphql.addHook('preExecution', async (_schema, document, ctx) => {
    const context = ctx as unknown as HookContext
    const operationName = (context.reply?.request.body as { operationName?: string } | undefined)?.operationName
    const op = operationOf(document, operationName ?? undefined)
    if (op?.operation !== 'mutation') return
    // Response keys of the public fields, so onResolution can find their answers.
    const aliases = new Set<string>()
    let publicCalls = 0
    for (const s of op.selectionSet.selections) {
      if (s.kind === Kind.FIELD && PUBLIC_MUTATIONS.has(s.name.value)) {
        aliases.add(s.alias?.value ?? s.name.value)
        publicCalls++
      }
    }
    if (publicCalls === 0) return
    context.publicAliases = aliases
    const ip = context.request?.ip ?? context.reply?.request.ip ?? 'inject'
    await checkFailedLookups(ip, context.reply)
    const used = await counter.hit(`v:${ip}`, WINDOW_MS, publicCalls)
    if (used.count > config.validateRateLimit) throw limited(context.reply, used.ttlMs, `Rate limit exceeded: ${config.validateRateLimit} validation and usage calls per minute`)
  })

  app.graphql.addHook('onResolution', async (execution, ctx) => {
    const context = ctx as unknown as HookContext
    if (!context.publicAliases?.size) return
    const n = notFoundCount(execution, context.publicAliases)
    const ip = context.request?.ip ?? context.reply?.request.ip ?? 'inject'
    if (n > 0) await counter.hit(`nf:${ip}`, FAILED_LOOKUP_WINDOW_MS, n)
  })
}, { name: 'rate-limits', dependencies: ['deps', 'auth', 'graphql'] })
