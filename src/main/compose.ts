// The composition root: the one place that builds the backends and every service from explicit
// dependencies, for the server (main/deps-plugin.ts) and the CLI (main/cli.ts) alike.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/config.ts'
import { createPortalService } from '../domain/portal/portal-service.ts'
import { createRevocationListService } from '../domain/revocation-list/revocation-list-service.ts'
import { createValidationRecorder, type ValidationRecorder } from '../domain/validation/validation-recorder.ts'
import { createOutboxRelay, type OutboxRelay } from '../events/outbox-relay.ts'
import { createCache } from '../infra/cache.ts'
import { createKeyring, type IKeyring } from '../infra/crypto.ts'
import { createDatabase, type IDatabase } from '../infra/database.ts'
import { createEventBus } from '../infra/event-bus.ts'
import { createMetrics } from '../infra/metrics.ts'
import { createSigner } from '../infra/signing.ts'
import { createAnalyticsService } from '../domain/analytics/analytics-service.ts'
import { createApiKeyService } from '../domain/api-keys/api-key-service.ts'
import { createAuditService } from '../domain/audit/audit-service.ts'
import { createCertificateService } from '../domain/certificates/certificate-service.ts'
import { createClientService } from '../domain/clients/client-service.ts'
import { createDeviceService } from '../domain/devices/device-service.ts'
import type { Deps } from '../domain/deps.ts'
import { createPolicyService } from '../domain/policies/policy-service.ts'
import { createSerialService } from '../domain/serials/serial-service.ts'
import { createValidationService } from '../domain/validation/validation-service.ts'
import { createWebhookService } from '../domain/webhooks/webhook-service.ts'
import { createUsageService } from '../domain/usage/usage-service.ts'

export function createServices (deps: Deps, recorder: ValidationRecorder) {
  const devices = createDeviceService(deps)
  const validation = createValidationService({ ...deps, devices, recorder })
  const serials = createSerialService(deps)
  const policies = createPolicyService(deps)
  const usage = createUsageService({ ...deps, validation })
  return {
    clients: createClientService(deps),
    serials,
    devices,
    validation,
    policies,
    usage,
    certificates: createCertificateService({ ...deps, validation }),
    apiKeys: createApiKeyService(deps),
    audit: createAuditService(deps),
    // usageByFeature's throughSeq is the usage watermark.
    analytics: createAnalyticsService({ ...deps, usage }),
    webhooks: createWebhookService(deps),
    revocationList: createRevocationListService(deps),
    // The portal reads through the narrow services it needs, under its own read-only actor.
    portal: createPortalService({ serials, devices, policies }),
    features: deps.config.features
  }
}

export type Services = ReturnType<typeof createServices>

/** Everything the composition root builds: the backends, the background workers and the services. */
export interface Root extends Omit<Deps, 'log' | 'clock' | 'eventsWritten'> {
  relay: OutboxRelay
  recorder: ValidationRecorder
  services: Services
  /** Closes what compose opened, in order (a database passed in stays open). */
  close (): Promise<void>
}

export interface ComposeOptions {
  log: FastifyBaseLogger
  /** An already open database (the CLI opens it first to report a locked PGlite folder). */
  database?: IDatabase
  /** In-process cache and bus even when Redis is configured (one-shot CLI commands). */
  inProcess?: boolean
}

/** The encryption keyring of a configuration (the CLI's key rotation needs only this). */
export function keyringOf (config: Config): IKeyring {
  return createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
}

/** How long start-up waits for the event bus's first heartbeat, in ms. */
const BUS_START_WAIT_MS = 2000

export async function compose (config: Config, { log, database: given, inProcess = false }: ComposeOptions): Promise<Root> {
  const redis = inProcess ? undefined : config.redis
  const metrics = createMetrics()
  const bus = createEventBus(redis, { log, subscriberErrors: metrics.busSubscriberErrors })
  // The first heartbeat comes back within a round trip; Redis down at start: go on degraded.
  const [database] = await Promise.all([given ?? createDatabase(config, log), bus.whenHealthy(BUS_START_WAIT_MS)])
  const cache = await createCache({
    redis,
    bus,
    stats: {
      hit: (level) => metrics.cacheRequests.inc({ level, result: 'hit' }),
      miss: (level) => metrics.cacheRequests.inc({ level, result: 'miss' })
    }
  })
  const keyring = keyringOf(config)
  const signer = createSigner(config.signing.algorithm, config.signing.privateKeyPem, config.signing.publicKeyPem)
  const relay = createOutboxRelay({ db: database.db, bus, log })
  const recorder = createValidationRecorder(database.db, (error) => log.warn({ err: error }, 'validation stats flush failed'))
  const deps: Deps = { config, database, cache, bus, keyring, signer, metrics, log, clock: () => new Date(), eventsWritten: () => relay.kick() }
  const services = createServices(deps, recorder)
  // Webhook deliveries are enqueued inside the relay's transaction, so none is lost or doubled.
  relay.addHook((tx, events) => services.webhooks.enqueue(tx, events).then(() => {}))
  const stopListening = await services.revocationList.listen(bus)
  return {
    config,
    database,
    cache,
    bus,
    keyring,
    signer,
    metrics,
    relay,
    recorder,
    services,
    async close () {
      await stopListening()
      await cache.close()
      await bus.close()
      if (!given) await database.close()
    }
  }
}
