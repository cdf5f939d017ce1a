// The server's side of the composition root: builds everything once (compose.ts), decorates it
// as app.deps, migrates, checks the secrets, starts the background jobs, and closes on shutdown.
import fp from 'fastify-plugin'
import type { Config } from '../config/config.ts'
import { checkSecretFingerprints } from '../domain/operations/secret-fingerprints.ts'
import { compose, type Root } from './compose.ts'
import { createJobs, startSchedule } from '../jobs/schedule.ts'

/** What routes and plugins reach through app.deps. */
export type AppDeps = Omit<Root, 'close'>

declare module 'fastify' {
  interface FastifyInstance { deps: AppDeps }
}

export interface DepsOptions { config: Config, background?: boolean }

export default fp<DepsOptions>(async (app, { config, background = true }) => {
  const log = app.log
  const root = await compose(config, { log })
  const { database, relay, recorder, services } = root
  const { close, ...deps } = root
  app.decorate('deps', deps)

  await database.migrate()
  try {
    await checkSecretFingerprints(database.db, config)
  } catch (error) {
    // Refused before anything started: release what was opened, then fail the start-up.
    await close().catch(() => {})
    throw error
  }

  let stopSchedule = async () => {}
  if (background) {
    relay.start()
    stopSchedule = startSchedule(createJobs({ ...app.deps, log }), { db: database.db, log })
  }

  app.addHook('onClose', async () => {
    // Together: a relay drain under way ends after its batch, and the schedule waits for it.
    await Promise.all([stopSchedule(), relay.stop()])
    await services.usage.close().catch(() => {})
    // What memory still holds, with or without the schedule.
    await recorder.flush()
    await services.apiKeys.flushLastUsed().catch(() => {})
    await close()
  })
}, { name: 'deps' })
