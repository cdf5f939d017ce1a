import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config/config.ts'
import { TEST_DATA_DIR } from '../helper.ts'

const base = { DATA_DIR: TEST_DATA_DIR }

t.test('defaults: embedded database, no Redis, contract defaults', async (t) => {
  const config = await loadConfig(base)
  t.equal(config.database.kind, 'pglite')
  t.equal(config.redis, undefined)
  t.equal(config.port, 3000)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.prefix, '/api/v1')
  t.equal(config.rateLimit, 1000)
  t.equal(config.validateRateLimit, 300)
  t.equal(config.signing.algorithm, 'RSA-PSS-4096')
  t.same(config.features, { bulkOperations: true, realTimeUpdates: true, advancedAnalytics: false })
  t.equal(config.encryptionKey.length, 32)
})

t.test('DB_* and REDIS_* parts build URLs', async (t) => {
  const config = await loadConfig({ ...base, DB_HOST: 'db.internal', DB_NAME: 'serials', DB_USER: 'app', DB_PASSWORD: 'p@ss', REDIS_HOST: 'cache', REDIS_PORT: '6380' })
  t.match(config.database, { kind: 'postgres', url: 'postgres://app:p%40ss@db.internal:5432/serials' })
  t.match(config.redis, { url: 'redis://cache:6380' })
})

const invalid: Array<[string, Record<string, string>]> = [
  ['API_PORT', { API_PORT: 'eighty' }],
  ['API_PORT', { API_PORT: '70000' }],
  ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }],
  ['REDIS_URL', { REDIS_URL: 'http://x' }],
  ['ENCRYPTION_KEY', { ENCRYPTION_KEY: 'too-short' }],
  ['SIGNING_ALGORITHM', { SIGNING_ALGORITHM: 'RSA-1024' }],
  ['RATE_LIMIT', { RATE_LIMIT: '-5' }],
  ['FEATURE_BULK_OPERATIONS', { FEATURE_BULK_OPERATIONS: 'maybe' }],
  ['ADMIN_API_KEY', { ADMIN_API_KEY: 'short' }],
  ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
  ['SERIAL_PUBLIC_KEY', { SERIAL_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\nx' }],
  ['USAGE_RETENTION_DAYS', { USAGE_RETENTION_DAYS: '0' }],
  ['USAGE_RETENTION_DAYS', { USAGE_RETENTION_DAYS: '30.5' }],
  ['USAGE_RETENTION_DAYS', { USAGE_RETENTION_DAYS: 'forever' }]
]
for (const [variable, env] of invalid) {
  t.test(`invalid ${variable} stops start-up with one line naming it`, async (t) => {
    const error = await loadConfig({ ...base, ...env }).then(() => null, (e: unknown) => e)
    t.ok(error instanceof ConfigError)
    t.equal((error as ConfigError).variable, variable)
    t.match((error as Error).message, new RegExp(`^Invalid configuration: ${variable} `))
    t.notMatch((error as Error).message, /\n/)
  })
}

t.test('USAGE_RETENTION_DAYS: unset keeps every usage event; a number of days otherwise', async (t) => {
  t.equal((await loadConfig(base)).usageRetentionDays, undefined)
  t.equal((await loadConfig({ ...base, USAGE_RETENTION_DAYS: '400' })).usageRetentionDays, 400)
})

t.test('production refuses generated secrets', async (t) => {
  const error = await loadConfig({ ...base, NODE_ENV: 'production' }).then(() => null, (e: unknown) => e)
  t.ok(error instanceof ConfigError)
  t.equal((error as ConfigError).variable, 'JWT_SECRET')
})

t.test('production turns GraphiQL and introspection off unless asked', async (t) => {
  const { readFileSync } = await import('node:fs')
  const pem = (name: string) => readFileSync(`${TEST_DATA_DIR}/secrets/rsa4096-${name}.pem`, 'utf8')
  const env = {
    ...base,
    NODE_ENV: 'production',
    JWT_SECRET: 'x'.repeat(40),
    ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    ENCRYPTION_PEPPER: 'p'.repeat(40),
    SERIAL_PRIVATE_KEY: pem('private'),
    SERIAL_PUBLIC_KEY: pem('public')
  }
  const config = await loadConfig(env)
  t.equal(config.graphiql, false)
  t.equal(config.introspection, false)
  const enabled = await loadConfig({ ...env, GRAPHIQL: 'true', INTROSPECTION: 'true' })
  t.equal(enabled.graphiql, true)
  t.equal(enabled.introspection, true)
})
