// The only file that listens: loadConfig → buildApp → listen; graceful shutdown on SIGTERM/SIGINT.
import { existsSync } from 'node:fs'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig, type Config } from '../config/config.ts'
import { DatabaseLockedError, queryRows } from '../infra/database.ts'
import { SecretMismatchError } from '../domain/operations/secret-fingerprints.ts'
import { startTracing } from '../infra/tracing.ts'
import { pageUrls } from '../http/web-routes.ts'

/** Where a database URL points, without its credentials (for messages). */
function where (url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`
  } catch {
    return 'DATABASE_URL'
  }
}

/**
 * One line for a start-up failure caused by the environment (configuration, a missing database, a
 * port in use), so the operator sees the cause rather than a stack trace. Undefined for anything
 * else: that is a bug, and its stack is worth printing.
 */
export function describeStartupError (error: unknown, config: Config | undefined): string | undefined {
  if (error instanceof ConfigError || error instanceof SecretMismatchError) return error.message
  if (error instanceof DatabaseLockedError) {
    return `${error.message}; PGlite allows one process at a time: stop the other server or CLI command, or give this one its own DATA_DIR`
  }
  const e = error as NodeJS.ErrnoException & { address?: string, port?: number, hostname?: string, syscall?: string }
  if (!e || typeof e !== 'object') return undefined
  const db = config?.database.kind === 'postgres' ? where(config.database.url) : undefined
  const dbName = db?.slice(db.indexOf('/') + 1)
  switch (e.code) {
    case 'EADDRINUSE':
      return `API_PORT ${config?.port ?? e.port} on API_HOST ${config?.host ?? e.address} is already in use: stop the other process or set API_PORT`
    case 'EADDRNOTAVAIL':
      return `API_HOST ${config?.host ?? e.address} is not an address of this machine: set API_HOST (e.g. 127.0.0.1 or 0.0.0.0)`
    case 'EACCES':
      if (e.syscall === 'listen') return `API_PORT ${config?.port ?? e.port} needs privileges this process lacks: use a port above 1023`
      return undefined
    case '3D000':
      return `PostgreSQL database "${dbName}" does not exist (${db}): create it first (createdb -h <host> -U <user> ${dbName}) or fix DATABASE_URL`
    case '28000': case '28P01':
      return `PostgreSQL refused the login (${e.message}): fix the user or password in DATABASE_URL`
    case 'ECONNREFUSED': case 'ENOTFOUND': case 'EAI_AGAIN': case 'ETIMEDOUT': case 'EHOSTUNREACH': case 'CONNECT_TIMEOUT': {
      const target = e.address ? `${e.address}:${e.port}` : (e.hostname ?? '')
      if (db && (!target || db.startsWith(target.replace(/^::1|^localhost/, '127.0.0.1')) || db.startsWith(target))) {
        return `PostgreSQL at ${db} does not answer (${e.code}): start it or fix DATABASE_URL`
      }
      return `${target || 'a configured server'} does not answer (${e.code}): check DATABASE_URL and REDIS_URL`
    }
    default:
      return undefined
  }
}

/** On a fresh install with no way in yet, say how to get the first credential. */
async function hintFirstCredential (app: FastifyInstance, config: Config): Promise<void> {
  if (config.adminApiKey) return
  const [row] = await queryRows<{ n: string | number }>(app.deps.database.db,
    sql`select count(*) as n from api_keys where revoked_at is null and (expires_at is null or expires_at > now())`)
  if (Number(row?.n ?? 0) > 0) return
  const cli = 'npm run -s cli -- create-api-key --role ADMIN --name admin'
  app.log.warn(config.database.kind === 'pglite'
    ? `No API key exists yet. To get the first one, stop this server (the embedded database allows one process at a time) and run \`${cli}\`, which prints the key once; or start the server with ADMIN_API_KEY set to a secret of at least 32 characters.`
    : `No API key exists yet. To get the first one, run \`${cli}\` (prints the key once), or start the server with ADMIN_API_KEY set to a secret of at least 32 characters.`)
}

async function main (): Promise<void> {
  // A .env in the working directory; variables already set win. Tests (NODE_ENV=test) skip it.
  if (process.env.NODE_ENV !== 'test' && existsSync('.env')) process.loadEnvFile('.env')
  let config: Config | undefined
  try {
    config = await loadConfig()
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

    try {
      await app.listen({ host: config.host, port: config.port })
    } catch (error) {
      await app.close().catch(() => {})
      throw error
    }
    // The pages a person opens first, on the address actually bound (API_PORT=0 picks a free port).
    const urls = pageUrls(app.server.address(), config.graphiql)
    if (urls) app.log.info(urls, `Operator console at ${urls.dashboard}, customer portal at ${urls.portal}${urls.graphiql ? `, GraphiQL at ${urls.graphiql}` : ''}`)
    await hintFirstCredential(app, config).catch((error: unknown) => app.log.warn({ err: error }, 'could not check for API keys'))
  } catch (error) {
    const line = describeStartupError(error, config)
    process.stderr.write(line ? `Serials failed to start: ${line}\n` : `Serials failed to start: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  }
}

void main()
