// build(t): the app on the test backends, closed on teardown. gql(): one GraphQL call.
// Backends: TEST_DATABASE_URL and TEST_REDIS_URL when set (CI sets them and fails loudly if they do
// not answer); otherwise embedded PGlite in memory + in-process. Never DATABASE_URL / REDIS_URL:
// those belong to the user's own service, and a test run must not write rows into it.
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp, type BuildOptions } from '../src/main/app.ts'
import { loadConfig, type Config } from '../src/config/config.ts'

export const ADMIN_KEY = 'test-admin-key-0123456789abcdefghijklmnopqrstuvwxyz'
/** Shared by all test processes: dev secrets (and the RSA key) are generated once. */
export const TEST_DATA_DIR = new URL('../.tap/test-data', import.meta.url).pathname

/**
 * The service's own backend variables, dropped from this process's environment so that nothing a
 * test starts (a child server, the CLI, loadConfig(process.env)) can reach the user's database.
 */
export const SERVICE_BACKEND_VARS = ['DATABASE_URL', 'DATABASE_READ_URL', 'DB_HOST', 'DB_PORT', 'DB_NAME', 'DB_USER', 'DB_PASSWORD',
  'REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD', 'REDIS_CLUSTER_NODES'] as const
for (const name of SERVICE_BACKEND_VARS) delete process.env[name]
// Inherited by every process a test starts: the server and the CLI skip any .env file under it.
process.env.NODE_ENV = 'test'

export const databaseUrl = process.env.TEST_DATABASE_URL || undefined
export const redisUrl = process.env.TEST_REDIS_URL || undefined
export const realBackends = Boolean(databaseUrl && redisUrl)
if (process.env.CI === 'true' && !realBackends) {
  // CI must exercise PostgreSQL and Redis; never fall back to embedded backends there.
  throw new Error('CI=true but TEST_DATABASE_URL / TEST_REDIS_URL are not set')
}

type Tap = { teardown (fn: () => unknown): void }

export interface TestOptions extends BuildOptions {
  env?: Record<string, string | undefined>
  /** Force embedded PGlite + in-process cache and bus, whatever the environment says. */
  embedded?: boolean
  /** For tests of a deliberately unreachable Redis. */
  skipRedisCheck?: boolean
}

export async function testConfig (options: TestOptions = {}): Promise<Config> {
  const embedded = options.embedded === true
  return loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: TEST_DATA_DIR,
    DATABASE_URL: embedded ? 'memory://' : databaseUrl ?? 'memory://',
    REDIS_URL: embedded ? undefined : redisUrl,
    // One prefix per process: parallel test files on one Redis never see each other's events.
    REDIS_PREFIX: `t${process.pid}${randomBytes(3).toString('hex')}`,
    ADMIN_API_KEY: ADMIN_KEY,
    LOG_LEVEL: 'silent',
    // Test files run in parallel and many build two apps: keep well under max_connections (100).
    DB_POOL_MAX: '4',
    RATE_LIMIT: '100000',
    VALIDATE_RATE_LIMIT: '100000',
    ...options.env
  })
}

export async function build (t: Tap, options: TestOptions = {}): Promise<FastifyInstance> {
  const config = await testConfig(options)
  const app = await buildApp(config, { logger: false, ...options })
  t.teardown(() => app.close())
  await app.ready()
  if (config.redis && !options.skipRedisCheck) {
    // A configured Redis that does not answer is a failure, never a silent fallback.
    await app.deps.cache.ping()
  }
  return app
}

/**
 * Two instances sharing the database and the Redis prefix. On embedded backends (one PGlite per
 * instance) both roles run on the same instance, so the same races still run.
 */
export async function buildPair (t: Tap, options: TestOptions = {}): Promise<[FastifyInstance, FastifyInstance]> {
  const shared = await testConfig()
  const env = { REDIS_PREFIX: shared.redis?.prefix ?? 'pair', ...options.env }
  const a = await build(t, { ...options, env })
  const b = databaseUrl ? await build(t, { ...options, env }) : a
  return [a, b]
}

/** A loopback port nothing listens on right now (for child servers, or a deliberately dead Redis). */
export async function freePort (): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface GqlResult<T = Record<string, any>> {
  status: number
  data: T | null
  errors?: Array<{ message: string, path?: string[], extensions: { code: string, statusCode: number, errors?: Array<{ field: string, message: string }> } }>
}

export async function gql<T = Record<string, any>> (app: FastifyInstance, query: string, variables: Record<string, unknown> = {}, token: string | null = ADMIN_KEY): Promise<GqlResult<T>> {
  const res: LightMyRequestResponse = await app.inject({
    method: 'POST',
    url: '/graphql',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    payload: { query, variables }
  })
  const body = res.json() as { data: T | null, errors?: GqlResult['errors'] }
  return { status: res.statusCode, data: body.data, errors: body.errors }
}

/** The data of a call that must succeed; fails the test with the errors otherwise. */
export async function gqlOk<T = Record<string, any>> (app: FastifyInstance, query: string, variables: Record<string, unknown> = {}, token: string | null = ADMIN_KEY): Promise<T> {
  const res = await gql<T>(app, query, variables, token)
  if (res.errors?.length || !res.data) throw new Error(`GraphQL failed: ${JSON.stringify(res.errors)}`)
  return res.data
}

let counter = 0
export function uniqueClientNumber (): string {
  return `T${process.pid}-${Date.now().toString(36)}-${counter++}`.toUpperCase().slice(0, 32)
}

export async function createClient (app: FastifyInstance, fields: Record<string, unknown> = {}): Promise<{ id: string, clientNumber: string }> {
  const data = await gqlOk<{ createClient: { id: string, clientNumber: string } }>(app,
    'mutation ($input: CreateClientInput!) { createClient(input: $input) { id clientNumber } }',
    { input: { clientNumber: uniqueClientNumber(), name: 'Test Client', contactEmail: 'ops@example.com', ...fields } })
  return data.createClient
}

export async function createSerial (app: FastifyInstance, clientId: string, fields: Record<string, unknown> = {}): Promise<{ id: string, serialNumber: string }> {
  const data = await gqlOk<{ createSerial: { serial: { id: string }, serialNumber: string } }>(app,
    'mutation ($input: CreateSerialInput!) { createSerial(input: $input) { serial { id } serialNumber } }',
    { input: { clientId, ...fields } })
  return { id: data.createSerial.serial.id, serialNumber: data.createSerial.serialNumber }
}

export async function createApiKey (app: FastifyInstance, role: 'ADMIN' | 'MANAGER' | 'AUDITOR', clientId?: string): Promise<string> {
  const data = await gqlOk<{ createApiKey: { secret: string } }>(app,
    'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }',
    { input: { name: `test ${role}`, role, clientId } })
  return data.createApiKey.secret
}

export async function restValidate (app: FastifyInstance, body: Record<string, unknown>) {
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: body })
  return { status: res.statusCode, body: res.json() as Record<string, any> }
}

export const VALIDATE = `mutation ($input: ValidateSerialInput!) {
  validateSerial(input: $input) { valid code message expiresAt remainingDevices isDemo serverTime nonce signature }
}`

/** Polls `check` every 20 ms until it holds; throws naming `what` after `ms`. */
export async function until (check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!await check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
