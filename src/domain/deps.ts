// What domain services are built from. Passed explicitly; no service reaches for a global.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/config.ts'
import type { ICache } from '../infra/cache.ts'
import type { IKeyring } from '../infra/crypto.ts'
import type { IDatabase } from '../infra/database.ts'
import type { IEventBus } from '../infra/event-bus.ts'
import type { Metrics } from '../infra/metrics.ts'
import type { ISigner } from '../infra/signing.ts'

export interface Deps {
  config: Config
  database: IDatabase
  cache: ICache
  bus: IEventBus
  keyring: IKeyring
  signer: ISigner
  metrics: Metrics
  log: FastifyBaseLogger
  clock: () => Date
  /** Called after a transaction that wrote outbox rows commits: wakes the relay at once. */
  eventsWritten: () => void
}
