import type { FastifyPluginAsync } from 'fastify'

type Check = { status: 'up' | 'down', kind: string, latencyMs?: number, error?: string }

async function check (kind: string, ping: () => Promise<number>): Promise<Check> {
  try {
    return { status: 'up', kind, latencyMs: await ping() }
  } catch (error) {
    return { status: 'down', kind, error: (error as Error).message }
  }
}

export const healthRoutes: FastifyPluginAsync = async (app) => {
  const { database, cache, bus } = app.deps
  app.get('/health', { config: { rateLimit: false } }, async () => ({ status: 'ok' }))

  // 503 only when the database is down: without Redis the service still validates ("degraded").
  app.get('/health/ready', { config: { rateLimit: false } }, async (_request, reply) => {
    const [db, c, b] = await Promise.all([
      check(database.kind, () => database.ping(1500)),
      check(cache.kind, () => cache.ping()),
      check(bus.kind, () => bus.ping())
    ])
    const status = db.status === 'down' ? 'down' : c.status === 'down' || b.status === 'down' ? 'degraded' : 'ok'
    return reply.status(status === 'down' ? 503 : 200).send({ status, checks: { database: db, cache: c, eventBus: b } })
  })
}
