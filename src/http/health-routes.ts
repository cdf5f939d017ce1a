import type { FastifyPluginAsync } from 'fastify'
import { ANY_ROUTE_ERRORS, errorResponses } from '../kernel/error-schema.ts'
import { unavailableReason } from '../kernel/errors.ts'

type Check = { status: 'up' | 'down', kind: string, latencyMs?: number, error?: string }

async function check (kind: string, ping: () => Promise<number>): Promise<Check> {
  try {
    return { status: 'up', kind, latencyMs: await ping() }
  } catch (error) {
    return { status: 'down', kind, error: failure(error) }
  }
}

/** Why a check failed, without driver text (a failed statement's message carries its SQL). */
function failure (error: unknown): string {
  const reason = unavailableReason(error)
  if (reason) return reason
  const e = error as { code?: unknown, cause?: { code?: unknown } }
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : undefined
  if (code) return `failed (${code})`
  return error instanceof Error && !('cause' in error) ? error.message : 'failed'
}

/**
 * How long one successful write probe answers readiness, in ms: a busy poller costs one probe a
 * second. A failed one is not reused, so readiness recovers with the first write that succeeds.
 */
const WRITE_PROBE_REUSE_MS = 1000

const checkSchema = {
  type: 'object',
  required: ['status', 'kind'],
  properties: {
    status: { type: 'string', enum: ['up', 'down'] },
    kind: { type: 'string', description: 'Which backend answered (e.g. postgres, pglite, redis, memory).' },
    latencyMs: { type: 'number', description: 'Round trip of the ping, in ms (up only).' },
    error: { type: 'string', description: 'Why the ping failed (down only).' }
  }
} as const

const readiness = (description: string, status: readonly string[]) => ({
  description,
  type: 'object',
  required: ['status', 'checks'],
  properties: {
    status: { type: 'string', enum: status },
    reason: { type: 'string', description: 'Why not ready (down only): the failing check and its cause.' },
    checks: {
      type: 'object',
      required: ['database', 'cache', 'eventBus'],
      properties: {
        database: checkSchema,
        databaseWrites: { ...checkSchema, description: 'A write that needs new disk space (rolled back): down on a full disk, an I/O error or a read-only server.' },
        cache: checkSchema,
        eventBus: checkSchema
      }
    }
  }
})

const liveSchema = {
  operationId: 'health',
  tags: ['Operations'],
  summary: 'Liveness',
  description: 'The process answers; touches no backend. Not rate-limited.',
  response: {
    200: { description: 'Alive.', type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } },
    ...errorResponses(ANY_ROUTE_ERRORS, { 429: 'RATE_LIMITED: only when a MANAGER credential is sent and its client is over its quotaPerMinute.' })
  }
}

const readySchema = {
  operationId: 'healthReady',
  tags: ['Operations'],
  summary: 'Readiness',
  description: 'Pings the database, the cache and the event bus. Not rate-limited.',
  response: {
    200: readiness('Ready: `ok`, or `degraded` when Redis is down (validation then reads PostgreSQL).', ['ok', 'degraded']),
    ...errorResponses(ANY_ROUTE_ERRORS, { 429: 'RATE_LIMITED: only when a MANAGER credential is sent and its client is over its quotaPerMinute.' }),
    // Not the error body: a balancer or an operator reads which backend failed.
    503: {
      description: 'Not ready: the database did not answer within 1.5 s, or cannot write (the readiness body, with its reason). ' +
        'Or SERVICE_UNAVAILABLE (an ErrorBody, with Retry-After): a credential was sent and PostgreSQL does not answer.',
      headers: { 'Retry-After': { type: 'integer', minimum: 1, description: 'Seconds to wait; sent with SERVICE_UNAVAILABLE.' } },
      content: { 'application/json': { schema: { anyOf: [readiness('Not ready.', ['down']), { $ref: 'ErrorBody#' }] } } }
    }
  }
}

export const healthRoutes: FastifyPluginAsync = async (app) => {
  const { database, cache, bus } = app.deps
  app.get('/health', { schema: liveSchema, config: { rateLimit: false } }, async () => ({ status: 'ok' }))

  let lastWrite: { at: number, result: Promise<number>, failed: boolean } | undefined
  const probeWrites = () => {
    if (!lastWrite || lastWrite.failed || Date.now() - lastWrite.at >= WRITE_PROBE_REUSE_MS) {
      const probe: { at: number, result: Promise<number>, failed: boolean } = { at: Date.now(), result: database.probeWrites(1500), failed: false }
      probe.result.catch(() => { probe.failed = true })
      lastWrite = probe
    }
    return lastWrite.result
  }

  // 503 only when the database is down or cannot write: without Redis the service still validates ("degraded").
  app.get('/health/ready', { schema: readySchema, config: { rateLimit: false } }, async (_request, reply) => {
    const [db, writes, c, b] = await Promise.all([
      check(database.kind, () => database.ping(1500)),
      check(database.kind, probeWrites),
      check(cache.kind, () => cache.ping()),
      check(bus.kind, () => bus.ping())
    ])
    const reason = db.status === 'down' ? `database: ${db.error}` : writes.status === 'down' ? `database writes fail: ${writes.error}` : undefined
    const status = reason ? 'down' : c.status === 'down' || b.status === 'down' ? 'degraded' : 'ok'
    return reply.status(status === 'down' ? 503 : 200).send({ status, ...(reason ? { reason } : {}), checks: { database: db, databaseWrites: writes, cache: c, eventBus: b } })
  })
}
