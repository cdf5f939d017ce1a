import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { childSpan, endWith, tracingEnabled } from './tracing.ts'

/** A single Redis or a Redis Cluster (REDIS_CLUSTER_NODES): both answer the commands used here. */
export type RedisClient = Redis | Cluster

export interface RedisConfig {
  url: string
  prefix: string
  /** Seed nodes of a Redis Cluster; the rest of the topology is discovered from them. */
  cluster?: Array<{ host: string, port: number }>
  password?: string
}

/**
 * The client for a Redis config: a Cluster when seed nodes are given, else createRedis(url). The
 * same fail-fast options apply to every node connection of a cluster.
 */
export function createRedisClient (config: RedisConfig, options: RedisOptions = {}): RedisClient {
  if (!config.cluster) return createRedis(config.url, options)
  const { enableOfflineQueue = true, enableReadyCheck = true, ...nodeOptions } = options
  const cluster = new Cluster(config.cluster, {
    enableOfflineQueue,
    enableReadyCheck,
    // Commands are grouped per node within one event-loop turn (multi-key commands stay per slot).
    enableAutoPipelining: true,
    clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    redisOptions: {
      maxRetriesPerRequest: 1,
      commandTimeout: 1000,
      connectTimeout: 2000,
      ...(config.password ? { password: config.password } : {}),
      ...nodeOptions
    }
  })
  cluster.on('error', () => {})
  if (tracingEnabled()) traceCommands(cluster)
  return cluster
}

/**
 * A Redis client that fails fast instead of queueing while Redis is down, so a cache or
 * rate-limit call degrades to PostgreSQL or in-process state within a few hundred ms.
 */
export function createRedis (url: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    lazyConnect: false,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    commandTimeout: 1000,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // Commands issued in one event-loop turn go out in one write: fewer syscalls on the hot path.
    enableAutoPipelining: true,
    ...options
  })
  // Connection errors are reported by health checks; without a listener ioredis logs to stderr.
  client.on('error', () => {})
  if (tracingEnabled()) traceCommands(client)
  return client
}

export async function pingRedis (client: RedisClient, timeoutMs = 1000): Promise<number> {
  const start = performance.now()
  let timer: NodeJS.Timeout | undefined
  const ping = client.ping()
  // Lost the race to the timeout: its own failure (commandTimeout) comes later, unheard.
  ping.catch(() => {})
  await Promise.race([
    ping,
    new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs) })
  ]).finally(() => clearTimeout(timer))
  return Math.round((performance.now() - start) * 100) / 100
}

/** One span per command inside a traced request: the command name only, never its arguments. */
function traceCommands (client: RedisClient): void {
  const send = client.sendCommand.bind(client) as (...args: unknown[]) => unknown
  // A cluster passes a third argument (the target node): forward whatever comes.
  client.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], ...rest: unknown[]) => {
    const name = command.name.toLowerCase()
    endWith(childSpan(`redis ${name}`, { 'db.system.name': 'redis', 'db.operation.name': name }), command.promise)
    return send(command, ...rest)
  }) as Redis['sendCommand']
}
