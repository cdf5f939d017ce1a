// The only reader of process.env. Everything else receives a typed Config.
import { z } from 'zod'
import { loadDevSecrets, type DevSecrets } from './dev-secrets.ts'

export class ConfigError extends Error {
  constructor (readonly variable: string, message: string) {
    super(`Invalid configuration: ${variable} ${message}`)
    this.name = 'ConfigError'
  }
}

const bool = (fallback: boolean) => z.enum(['true', 'false', '1', '0', 'yes', 'no'])
  .optional()
  .transform((v) => v === undefined ? fallback : ['true', '1', 'yes'].includes(v))

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback)
const optionalString = z.string().min(1).optional()
/** NOT_FOUND answers an IP may get per minute from the public calls (the enumeration defence). */
export const DEFAULT_FAILED_LOOKUP_LIMIT = 20
/** A duration in seconds, fractions allowed (0.5 = 500 ms). */
const seconds = (fallback: number, max: number) => z.coerce.number().min(0.05).max(max).default(fallback)

/** Accepts a 32-byte key as base64 or hex. */
function parseKey (value: string): Buffer | undefined {
  const hex = /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : undefined
  if (hex) return hex
  const b64 = Buffer.from(value, 'base64')
  return b64.length === 32 ? b64 : undefined
}

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: port(3000),
  API_PREFIX: z.string().regex(/^\/[A-Za-z0-9/_-]*$/, 'must start with / and hold only letters, digits, / _ -').default('/api/v1'),
  DATABASE_URL: z.string().regex(/^(postgres(ql)?:\/\/|memory:\/\/)/, 'must be a postgres:// URL').optional(),
  DB_HOST: optionalString,
  DB_PORT: port(5432),
  DB_NAME: optionalString,
  DB_USER: optionalString,
  DB_PASSWORD: z.string().optional(),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  DB_LOOKUP_POOL_MAX: z.coerce.number().int().min(1).max(50).default(2),
  DB_CONNECT_TIMEOUT: seconds(2, 60),
  DB_ANSWER_TIMEOUT: seconds(1, 600),
  DB_ACQUIRE_TIMEOUT: seconds(5, 600),
  DATABASE_READ_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL').optional(),
  REDIS_HOST: optionalString,
  REDIS_PORT: port(6379),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_CLUSTER_NODES: z.string().regex(/^\s*[^\s,:]+:\d{1,5}\s*(,\s*[^\s,:]+:\d{1,5}\s*)*$/, 'must be host:port,host:port,…').optional(),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'must be 1–40 letters, digits, _ or -').default('serials'),
  DATA_DIR: z.string().min(1).default('./data'),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  ENCRYPTION_KEY: z.string().optional(),
  ENCRYPTION_KEYS_PREVIOUS: z.string().optional(),
  ENCRYPTION_PEPPER: z.string().min(32, 'must be at least 32 characters').optional(),
  SERIAL_PRIVATE_KEY: optionalString,
  SERIAL_PUBLIC_KEY: optionalString,
  SIGNING_ALGORITHM: z.enum(['RSA-PSS-4096', 'ED25519']).default('RSA-PSS-4096'),
  RATE_LIMIT: z.coerce.number().int().min(1).default(1000),
  VALIDATE_RATE_LIMIT: z.coerce.number().int().min(1).default(300),
  SUBSCRIPTIONS_PER_CREDENTIAL: z.coerce.number().int().min(1).default(500),
  FAILED_LOOKUP_LIMIT: z.coerce.number().int().min(1).default(DEFAULT_FAILED_LOOKUP_LIMIT),
  HEADERS_TIMEOUT: z.coerce.number().int().min(1).max(600).default(10),
  REQUEST_TIMEOUT: z.coerce.number().int().min(1).max(3600).default(30),
  EXPIRY_WARNING_DAYS: z.coerce.number().int().min(1).max(365).default(7),
  USAGE_RETENTION_DAYS: z.coerce.number().int('must be a whole number of days')
    .min(1, 'must be at least 1 (unset keeps every usage event)').max(36_500, 'must be at most 36500').optional(),
  FEATURE_BULK_OPERATIONS: bool(true),
  FEATURE_REAL_TIME_UPDATES: bool(true),
  FEATURE_ADVANCED_ANALYTICS: bool(false),
  ADMIN_API_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRAPHIQL: bool(true),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
  OTEL_SERVICE_NAME: z.string().min(1).max(100).default('serials'),
  INTROSPECTION: bool(true),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  WEBHOOK_ALLOW_PRIVATE: bool(false),
  TRUST_PROXY: bool(false),
  CORS_ORIGINS: z.string().optional()
})

type Env = z.infer<typeof envSchema>

/** How long PostgreSQL may keep a request waiting before it answers 503 SERVICE_UNAVAILABLE, in ms. */
export interface DatabaseTimeouts {
  /** A new connection (TCP, TLS, authentication) must be ready within this (DB_CONNECT_TIMEOUT). */
  connectMs: number
  /**
   * A statement unanswered for this long makes the service check, on a fresh connection, whether
   * PostgreSQL still answers; if not, waiting statements fail and new ones fail at once until it
   * does (DB_ANSWER_TIMEOUT). A statement that is merely slow on a live server runs on.
   */
  answerMs: number
  /** A statement or transaction waiting longer than this for a pool connection fails (DB_ACQUIRE_TIMEOUT). */
  acquireMs: number
}

export interface Config {
  env: Env['NODE_ENV']
  host: string
  port: number
  prefix: string
  database: { kind: 'postgres', url: string, poolMax: number, lookupPoolMax: number, timeouts: DatabaseTimeouts } | { kind: 'pglite', dataDir: string | undefined }
  databaseReadUrl: string | undefined
  /** prefix: namespaces keys, rate-limit counters and pub/sub topics (several deployments, one Redis). */
  /** cluster: seed nodes from REDIS_CLUSTER_NODES (url then names the first one). */
  redis: { url: string, prefix: string, cluster?: Array<{ host: string, port: number }>, password?: string } | undefined
  dataDir: string
  jwtSecret: string
  encryptionKey: Buffer
  encryptionKeysPrevious: Buffer[]
  pepper: Buffer
  signing: { algorithm: 'RSA-PSS-4096' | 'ED25519', privateKeyPem: string, publicKeyPem: string }
  rateLimit: number
  validateRateLimit: number
  /** Live GraphQL subscriptions one credential (an API key with its tokens) may hold across sockets and instances. */
  subscriptionsPerCredential: number
  /** NOT_FOUND answers per IP per minute to public calls; as many public calls of one IP run at once. */
  failedLookupLimit: number
  /** Seconds a client has to send a request's headers; past it: 408. */
  headersTimeout: number
  /** Seconds a client has to send a whole request, body included; past it: 408. */
  requestTimeout: number
  /** Days before expiry when serial.expiring is raised (once per expiry). */
  expiryWarningDays: number
  /** Days of raw usage_events kept (whole months past it are dropped; rollups stay); undefined = keep all. */
  usageRetentionDays: number | undefined
  features: { bulkOperations: boolean, realTimeUpdates: boolean, advancedAnalytics: boolean }
  adminApiKey: string | undefined
  logLevel: Env['LOG_LEVEL']
  /** Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT is set (read by platform/tracing.ts). */
  otelEndpoint: string | undefined
  otelServiceName: string
  graphiql: boolean
  introspection: boolean
  metricsToken: string | undefined
  webhookAllowPrivate: boolean
  trustProxy: boolean
  /** Origins (scheme://host[:port]) whose pages may call the public validation routes; empty = none. */
  corsOrigins: string[]
}

function firstIssue (error: z.ZodError): ConfigError {
  const issue = error.issues[0]
  const variable = String(issue?.path[0] ?? 'environment')
  return new ConfigError(variable, issue?.message ?? 'is invalid')
}

function buildDatabaseUrl (env: Env): string | undefined {
  if (env.DATABASE_URL) return env.DATABASE_URL
  if (!env.DB_HOST) return undefined
  const url = new URL('postgres://localhost')
  url.hostname = env.DB_HOST
  url.port = String(env.DB_PORT)
  url.pathname = `/${env.DB_NAME ?? 'serials'}`
  url.username = env.DB_USER ?? 'postgres'
  if (env.DB_PASSWORD) url.password = env.DB_PASSWORD
  return url.toString()
}

function clusterNodes (env: Env): Array<{ host: string, port: number }> | undefined {
  if (!env.REDIS_CLUSTER_NODES) return undefined
  return env.REDIS_CLUSTER_NODES.split(',').map((node) => {
    const [host, port] = node.trim().split(':') as [string, string]
    if (Number(port) < 1 || Number(port) > 65535) throw new ConfigError('REDIS_CLUSTER_NODES', `has an invalid port: ${node.trim()}`)
    return { host, port: Number(port) }
  })
}

function buildRedisUrl (env: Env, cluster: Array<{ host: string, port: number }> | undefined): string | undefined {
  if (cluster) {
    const url = new URL('redis://localhost')
    url.hostname = cluster[0]!.host
    url.port = String(cluster[0]!.port)
    return url.toString()
  }
  if (env.REDIS_URL) return env.REDIS_URL
  if (!env.REDIS_HOST) return undefined
  const url = new URL('redis://localhost')
  url.hostname = env.REDIS_HOST
  url.port = String(env.REDIS_PORT)
  if (env.REDIS_PASSWORD) url.password = env.REDIS_PASSWORD
  return url.toString()
}

/** CORS_ORIGINS: comma-separated origins, each exactly as a browser sends it in `Origin`. */
function corsOrigins (env: Env): string[] {
  const entries = (env.CORS_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  for (const entry of entries) {
    let origin: string | undefined
    try {
      const url = new URL(entry)
      if (url.protocol === 'http:' || url.protocol === 'https:') origin = url.origin
    } catch { /* not a URL */ }
    // Compared verbatim with the Origin header: no path, no trailing slash, no default port.
    if (origin !== entry) throw new ConfigError('CORS_ORIGINS', `has an entry that is not an origin (scheme://host[:port], as in ${origin ?? 'https://app.example.com'}): ${entry}`)
  }
  return entries
}

function keyOrThrow (variable: string, value: string): Buffer {
  const key = parseKey(value.trim())
  if (!key) throw new ConfigError(variable, 'must be 32 bytes, base64 or hex')
  return key
}

/** Reads PEM text, or a file when the value is a path. */
async function readPem (variable: string, value: string): Promise<string> {
  if (value.includes('-----BEGIN')) return value.replace(/\\n/g, '\n')
  const { readFile } = await import('node:fs/promises')
  try {
    return await readFile(value, 'utf8')
  } catch {
    throw new ConfigError(variable, `names a file that cannot be read: ${value}`)
  }
}

export async function loadConfig (source: Record<string, string | undefined> = process.env): Promise<Config> {
  const parsed = envSchema.safeParse(source)
  if (!parsed.success) throw firstIssue(parsed.error)
  const env = parsed.data
  const production = env.NODE_ENV === 'production'

  if (production) {
    for (const name of ['JWT_SECRET', 'ENCRYPTION_KEY', 'ENCRYPTION_PEPPER', 'SERIAL_PRIVATE_KEY', 'SERIAL_PUBLIC_KEY'] as const) {
      if (!env[name]) throw new ConfigError(name, 'must be set in production (generated development secrets are refused)')
    }
  }
  if ((env.SERIAL_PRIVATE_KEY === undefined) !== (env.SERIAL_PUBLIC_KEY === undefined)) {
    throw new ConfigError(env.SERIAL_PRIVATE_KEY ? 'SERIAL_PUBLIC_KEY' : 'SERIAL_PRIVATE_KEY', 'must be set together with its pair')
  }

  if (env.HEADERS_TIMEOUT > env.REQUEST_TIMEOUT) throw new ConfigError('HEADERS_TIMEOUT', 'must not exceed REQUEST_TIMEOUT')

  const needsDev = !env.JWT_SECRET || !env.ENCRYPTION_KEY || !env.ENCRYPTION_PEPPER || !env.SERIAL_PRIVATE_KEY
  const dev: DevSecrets | undefined = needsDev ? await loadDevSecrets(env.DATA_DIR, env.SIGNING_ALGORITHM, !env.SERIAL_PRIVATE_KEY) : undefined

  const encryptionKey = env.ENCRYPTION_KEY ? keyOrThrow('ENCRYPTION_KEY', env.ENCRYPTION_KEY) : dev!.encryptionKey
  const encryptionKeysPrevious = (env.ENCRYPTION_KEYS_PREVIOUS ?? '').split(',').map((s) => s.trim()).filter(Boolean)
    .map((k) => keyOrThrow('ENCRYPTION_KEYS_PREVIOUS', k))

  const signing = env.SERIAL_PRIVATE_KEY && env.SERIAL_PUBLIC_KEY
    ? {
        algorithm: env.SIGNING_ALGORITHM,
        privateKeyPem: await readPem('SERIAL_PRIVATE_KEY', env.SERIAL_PRIVATE_KEY),
        publicKeyPem: await readPem('SERIAL_PUBLIC_KEY', env.SERIAL_PUBLIC_KEY)
      }
    : { algorithm: env.SIGNING_ALGORITHM, ...dev!.signing! }

  const databaseUrl = buildDatabaseUrl(env)
  const cluster = clusterNodes(env)
  const redisUrl = buildRedisUrl(env, cluster)

  return {
    env: env.NODE_ENV,
    host: env.API_HOST,
    port: env.API_PORT,
    prefix: env.API_PREFIX.replace(/\/+$/, '') || '/api/v1',
    database: databaseUrl && !databaseUrl.startsWith('memory://')
      ? {
          kind: 'postgres',
          url: databaseUrl,
          poolMax: env.DB_POOL_MAX,
          lookupPoolMax: env.DB_LOOKUP_POOL_MAX,
          timeouts: { connectMs: env.DB_CONNECT_TIMEOUT * 1000, answerMs: env.DB_ANSWER_TIMEOUT * 1000, acquireMs: env.DB_ACQUIRE_TIMEOUT * 1000 }
        }
      : { kind: 'pglite', dataDir: databaseUrl ? undefined : `${env.DATA_DIR}/pglite` },
    databaseReadUrl: env.DATABASE_READ_URL,
    redis: redisUrl
      ? { url: redisUrl, prefix: env.REDIS_PREFIX, ...(cluster ? { cluster, ...(env.REDIS_PASSWORD ? { password: env.REDIS_PASSWORD } : {}) } : {}) }
      : undefined,
    dataDir: env.DATA_DIR,
    jwtSecret: env.JWT_SECRET ?? dev!.jwtSecret,
    encryptionKey,
    encryptionKeysPrevious,
    pepper: env.ENCRYPTION_PEPPER ? Buffer.from(env.ENCRYPTION_PEPPER) : dev!.pepper,
    signing,
    rateLimit: env.RATE_LIMIT,
    validateRateLimit: env.VALIDATE_RATE_LIMIT,
    subscriptionsPerCredential: env.SUBSCRIPTIONS_PER_CREDENTIAL,
    failedLookupLimit: env.FAILED_LOOKUP_LIMIT,
    headersTimeout: env.HEADERS_TIMEOUT,
    requestTimeout: env.REQUEST_TIMEOUT,
    expiryWarningDays: env.EXPIRY_WARNING_DAYS,
    usageRetentionDays: env.USAGE_RETENTION_DAYS,
    features: {
      bulkOperations: env.FEATURE_BULK_OPERATIONS,
      realTimeUpdates: env.FEATURE_REAL_TIME_UPDATES,
      advancedAnalytics: env.FEATURE_ADVANCED_ANALYTICS
    },
    adminApiKey: env.ADMIN_API_KEY,
    logLevel: env.LOG_LEVEL,
    otelEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
    otelServiceName: env.OTEL_SERVICE_NAME,
    graphiql: production ? source.GRAPHIQL === 'true' : env.GRAPHIQL,
    introspection: production ? source.INTROSPECTION === 'true' : env.INTROSPECTION,
    metricsToken: env.METRICS_TOKEN,
    webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE,
    trustProxy: env.TRUST_PROXY,
    corsOrigins: corsOrigins(env)
  }
}
