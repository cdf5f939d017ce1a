// Builds the infrastructure (database, cache, bus, crypto, metrics) and the domain services once,
// decorates them as app.deps, starts the background workers, and closes everything on shutdown.
import fp from 'fastify-plugin'
import type { Config } from '../config/config.ts'
import { checkSecretFingerprints } from '../domain/operations/secret-fingerprints.ts'
import { createOutboxRelay, type OutboxRelay } from '../events/outbox-relay.ts'
import { createServices, type Services } from './compose.ts'
import { createValidationRecorder, type ValidationRecorder } from '../domain/serials/validation-recorder.ts'
import { pruneIdempotencyKeys } from '../infra/idempotency.ts'
import { createCache, type ICache } from '../infra/cache.ts'
import { createKeyring, type IKeyring } from '../infra/crypto.ts'
import { createDatabase, type IDatabase } from '../infra/database.ts'
import { createEventBus, type IEventBus } from '../infra/event-bus.ts'
import { createMetrics, type Metrics } from '../infra/metrics.ts'
import { createSigner, type ISigner } from '../infra/signing.ts'
import { startGaugeRefresh } from '../jobs/refresh-gauges.ts'

export interface AppDeps {
  config: Config
  database: IDatabase
  cache: ICache
  bus: IEventBus
  keyring: IKeyring
  signer: ISigner
  metrics: Metrics
  relay: OutboxRelay
  recorder: ValidationRecorder
  services: Services
}

declare module 'fastify' {
  interface FastifyInstance { deps: AppDeps }
}

/** How long start-up waits for the event bus's first heartbeat, in ms. */
const BUS_START_WAIT_MS = 2000

export interface DepsOptions { config: Config, background?: boolean }

export default fp<DepsOptions>(async (app, { config, background = true }) => {
  const metrics = createMetrics()
  const bus = createEventBus(config.redis)
  // The first heartbeat comes back within a round trip; Redis down at start: go on degraded.
  const [database] = await Promise.all([createDatabase(config), bus.whenHealthy(BUS_START_WAIT_MS)])
  const cache = await createCache({
    redis: config.redis,
    bus,
    stats: {
      hit: (level) => metrics.cacheRequests.inc({ level, result: 'hit' }),
      miss: (level) => metrics.cacheRequests.inc({ level, result: 'miss' })
    }
  })
  const keyring = createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
  const signer = createSigner(config.signing.algorithm, config.signing.privateKeyPem, config.signing.publicKeyPem)
  const log = app.log
  const relay = createOutboxRelay({ db: database.db, bus, log })
  const recorder = createValidationRecorder(database.db, (error) => log.warn({ err: error }, 'validation stats flush failed'))
  const deps = { config, database, cache, bus, keyring, signer, metrics, log, clock: () => new Date(), eventsWritten: () => relay.kick() }
  const services = createServices(deps, recorder)

  // Webhook deliveries are enqueued inside the relay's transaction, so none is lost or doubled.
  relay.addHook((tx, events) => services.webhooks.enqueue(tx, events).then(() => {}))

  app.decorate('deps', { config, database, cache, bus, keyring, signer, metrics, relay, recorder, services })

  await database.migrate()
  try {
    await checkSecretFingerprints(database.db, config)
  } catch (error) {
    // Refused before anything started: release what was opened, then fail the start-up.
    await Promise.allSettled([cache.close(), bus.close(), database.close()])
    throw error
  }

  const timers: NodeJS.Timeout[] = []
  let stopGauges = () => {}
  let stopScheduler = async () => {}
  if (background) {
    relay.start()
    recorder.start()
    stopGauges = startGaugeRefresh(database.readDb, metrics, log)
    const every = (ms: number, fn: () => Promise<void>) => {
      const t = setInterval(() => { fn().catch((error: unknown) => log.warn({ err: error }, 'background task failed')) }, ms)
      t.unref()
      timers.push(t)
    }
    every(30_000, () => services.apiKeys.flushLastUsed())
    every(1000, async () => { while (await services.webhooks.deliverDue() === 20); })
    every(3_600_000, () => pruneIdempotencyKeys(database.db, new Date()))
    stopScheduler = services.scheduler.start()
  }

  app.addHook('onClose', async () => {
    for (const t of timers) clearInterval(t)
    stopGauges()
    await stopScheduler()
    await services.usage.close().catch(() => {})
    await relay.stop()
    await recorder.stop()
    await services.apiKeys.flushLastUsed().catch(() => {})
    await cache.close()
    await bus.close()
    await database.close()
  })
}, { name: 'deps' })
