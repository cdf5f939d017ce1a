// The only file that listens: loadConfig → buildApp → listen; graceful shutdown on SIGTERM/SIGINT.
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { startTracing } from './platform/tracing.ts'

async function main (): Promise<void> {
  let config
  try {
    config = await loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`)
      process.exit(1)
    }
    throw error
  }
  const stopTracing = startTracing(config.otelEndpoint, config.otelServiceName)
  const app = await buildApp(config)
  app.addHook('onClose', async () => { await stopTracing().catch(() => {}) })
  const { database, cache, bus } = app.deps
  app.log.info({ database: database.kind, cache: cache.kind, eventBus: bus.kind, signing: config.signing.algorithm }, 'backends ready')

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down: draining requests')
    const force = setTimeout(() => { app.log.error('shutdown took over 15 s; exiting'); process.exit(1) }, 15_000)
    force.unref()
    app.close().then(() => process.exit(0), (error: unknown) => { app.log.error({ err: error }, 'shutdown failed'); process.exit(1) })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))

  await app.listen({ host: config.host, port: config.port })
  if (config.graphiql) app.log.info(`GraphiQL at http://${config.host}:${config.port}/graphiql`)
}

main().catch((error: unknown) => {
  process.stderr.write(`Serials failed to start: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
