// What domain services are built from. Passed explicitly; no service reaches for a global.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import type { ICache } from './cache.ts'
import type { IKeyring } from './crypto.ts'
import type { IDatabase } from './database.ts'
import type { IEventBus } from './event-bus.ts'
import type { Metrics } from './metrics.ts'
import type { ISigner } from './signing.ts'

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
