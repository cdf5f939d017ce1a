// Event bus: in-process mqemitter, or mqemitter-redis so every instance sees every event.
// The same emitter carries GraphQL subscriptions (mercurius) and cache invalidations.
import { randomBytes } from 'node:crypto'
import mqemitter, { type MQEmitter } from 'mqemitter'
import mqemitterRedis from 'mqemitter-redis'
import type { Counter } from 'prom-client'

import { createRedisClient, pingRedis, type RedisClient, type RedisConfig } from './redis.ts'

export type BusHandler = (payload: unknown) => void | Promise<void>

/**
 * A topic that stays on this instance (never sent to Redis): `{ busHealthy: false }` when the bus
 * goes silent, `{ busHealthy: true }` when it is heard again. Lets a subscription stream (which
 * only sees ctx.pubsub) stop trusting live delivery and re-read what it may have missed.
 */
export const BUS_STATE_TOPIC = '_bus/state'
export interface BusState { busHealthy: boolean }
export function isBusState (message: unknown): message is BusState {
  return typeof (message as BusState | null)?.busHealthy === 'boolean'
}

export interface IEventBus {
  readonly kind: 'redis' | 'memory'
  readonly emitter: MQEmitter
  /**
   * Whether this instance hears what is published right now. Redis: the subscriber connection is
   * up and this instance's own heartbeat came back through it within SILENT_AFTER_MS. Always true
   * in-process. While false, messages (cache invalidations, revocations, events) may be missed.
   */
  healthy (): boolean
  /**
   * Called with false when the bus goes silent and with true once it is heard again. After a
   * `true`, anything published while silent may have been missed: drop or re-read derived state.
   */
  onHealthChange (listener: (healthy: boolean) => void): () => void
  /**
   * Resolves true once healthy() is true, or false after timeoutMs. A fresh Redis bus is silent
   * until its first heartbeat comes back (one round trip); start-up waits for it so an instance
   * does not serve its first requests from a bus it cannot yet trust.
   */
  whenHealthy (timeoutMs: number): Promise<boolean>
  publish (topic: string, payload: unknown): Promise<void>
  /** Resolves once the subscription is live (for Redis: after SUBSCRIBE is acknowledged). */
  subscribe (topic: string, handler: BusHandler): Promise<() => Promise<void>>
  ping (): Promise<number>
  close (): Promise<void>
}

/**
 * What the bus does with a subscriber's failure. A handler that throws or rejects never stops
 * delivery (to it or to other subscribers), so a failure is only visible through these.
 */
export interface EventBusOptions {
  /** Receives one `error` line per failed handler, with the subscribed topic. */
  log?: { error (object: object, message: string): void }
  /** Counted once per failed handler (serials_bus_subscriber_errors_total). */
  subscriberErrors?: Pick<Counter, 'inc'>
}

/** Heartbeat period while Redis is configured, in ms. */
export const HEARTBEAT_MS = 250
/** The bus counts as silent when no own heartbeat came back for this long, in ms. */
export const SILENT_AFTER_MS = 1500

interface Health {
  healthy (): boolean
  onHealthChange (listener: (healthy: boolean) => void): () => void
  stop (): void
}

const alwaysHealthy: Health = { healthy: () => true, onHealthChange: () => () => {}, stop () {} }

function wrap (kind: 'redis' | 'memory', emitter: MQEmitter, ping: () => Promise<number>, health: Health, options: EventBusOptions, disconnect = () => {}): IEventBus {
  let closed = false
  const failed = (topic: string, error: unknown) => {
    // Reporting must not turn one subscriber's failure into an unhandled rejection.
    try {
      options.subscriberErrors?.inc()
      options.log?.error({ err: error, topic }, 'event bus subscriber failed')
    } catch { /* nothing left to tell */ }
  }
  return {
    kind,
    emitter,
    healthy: health.healthy,
    onHealthChange: health.onHealthChange,
    whenHealthy: (timeoutMs) => new Promise<boolean>((resolve) => {
      if (health.healthy()) return resolve(true)
      const done = (value: boolean) => { clearTimeout(timer); off(); resolve(value) }
      const off = health.onHealthChange((healthy) => { if (healthy) done(true) })
      const timer = setTimeout(() => done(false), timeoutMs)
      timer.unref()
    }),
    publish: (topic, payload) => new Promise((resolve, reject) => {
      emitter.emit({ topic, payload }, (error) => error ? reject(error) : resolve())
    }),
    subscribe: (topic, handler) => new Promise((resolve) => {
      const listener = (message: Record<string, unknown> & { topic: string }, done: () => void) => {
        Promise.resolve().then(() => handler(message.payload)).catch((error: unknown) => failed(topic, error)).finally(done)
      }
      emitter.on(topic, listener, () => resolve(() => new Promise<void>((resolve) => {
        if (closed) return resolve()
        emitter.removeListener(topic, listener, () => resolve())
      })))
    }),
    ping,
    close: async () => {
      if (closed) return
      closed = true
      health.stop()
      // A graceful QUIT never completes while Redis is down: give it a second, then cut.
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => emitter.close(() => resolve())),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, 1000) })
      ])
      clearTimeout(timer)
      disconnect()
    }
  }
}

// On a cluster, plain PUBLISH reaches subscribers on every node (the cluster bus broadcasts it),
// which mqemitter-redis's SUBSCRIBE/PSUBSCRIBE need; sharded pub/sub has no pattern form.
export function createEventBus (redis: RedisConfig | undefined, options: EventBusOptions = {}): IEventBus {
  if (!redis) {
    return wrap('memory', mqemitter({ concurrency: 0 }), async () => 0, alwaysHealthy, options)
  }
  const pubConn: RedisClient = createRedisClient(redis, { enableOfflineQueue: true })
  // No ready check on the subscriber: its INFO would race the first SUBSCRIBE and throw.
  const subConn: RedisClient = createRedisClient(redis, { enableOfflineQueue: true, enableReadyCheck: false, commandTimeout: undefined })
  // Topics are prefixed so deployments (or test runs) sharing one Redis never hear each other.
  const { MQEmitterRedisPrefix } = mqemitterRedis as unknown as { MQEmitterRedisPrefix: new (prefix: string, options: object) => MQEmitter }
  const emitter = new MQEmitterRedisPrefix(`${redis.prefix}/`, { pubConn, subConn })
  // mqemitter-redis re-emits connection errors on `state`; unheard, an EventEmitter 'error'
  // would crash the process while Redis is down. The readiness check reports the outage instead.
  ;(emitter as unknown as { state: { on (event: 'error', fn: () => void): void } }).state.on('error', () => {})
  // mqemitter-redis closes with QUIT and ignores its promise: while Redis is down that QUIT fails
  // (command timeout) as an unhandled rejection. Its outcome does not matter; we disconnect anyway.
  for (const conn of [pubConn, subConn]) {
    const quit = conn.quit.bind(conn)
    conn.quit = ((...args: Parameters<RedisClient['quit']>) => {
      const done = quit(...args)
      done.catch(() => {})
      return done
    }) as RedisClient['quit']
  }
  const health = watchHealth(emitter, subConn)
  // BUS_STATE_TOPIC is served by a local emitter. mqemitter-redis calls its own saved `_on`
  // internally, so overriding the instance's public methods does not recurse.
  const local = mqemitter({ concurrency: 0 })
  const redisOn = emitter.on.bind(emitter)
  const redisRemove = emitter.removeListener.bind(emitter)
  emitter.on = ((topic, notify, done) => {
    if (topic !== BUS_STATE_TOPIC) return redisOn(topic, notify, done)
    local.on(topic, notify, done)
    return emitter
  }) as MQEmitter['on']
  emitter.removeListener = ((topic, notify, done) => {
    if (topic !== BUS_STATE_TOPIC) return redisRemove(topic, notify, done)
    local.removeListener(topic, notify, done)
    return emitter
  }) as MQEmitter['removeListener']
  health.onHealthChange((busHealthy) => { local.emit({ topic: BUS_STATE_TOPIC, payload: { busHealthy } satisfies BusState }) })
  return wrap('redis', emitter, () => pingRedis(pubConn), health, options, () => { pubConn.disconnect(); subConn.disconnect() })
}

/**
 * Liveness of the whole path publisher → Redis → subscriber, not of a socket: every HEARTBEAT_MS
 * the instance publishes to a topic only it subscribes to. Healthy means that message came back
 * recently. A closed subscriber connection (Redis stopped) makes the bus silent at once; a silent
 * network (no FIN) is noticed after SILENT_AFTER_MS. The first heartbeat heard after an outage
 * proves the re-issued SUBSCRIBEs are active, which is when listeners may resynchronise.
 */
function watchHealth (emitter: MQEmitter, subConn: RedisClient): Health {
  const topic = `_bus/heartbeat/${randomBytes(8).toString('hex')}`
  const listeners = new Set<(healthy: boolean) => void>()
  let healthy = false
  let lastBeat = 0
  let stopped = false
  const set = (value: boolean) => {
    if (value === healthy || stopped) return
    healthy = value
    for (const listener of [...listeners]) {
      try { listener(value) } catch { /* one listener's failure must not stop the others */ }
    }
  }
  emitter.on(topic, (_message, done) => {
    lastBeat = Date.now()
    if (subConn.status === 'ready') set(true)
    done()
  })
  const silent = () => set(false)
  subConn.on('close', silent)
  subConn.on('end', silent)
  let lastTick = Date.now()
  const timer = setInterval(() => {
    const now = Date.now()
    // After a stalled event loop the echo may be waiting unread in the socket: judge next tick.
    const late = now - lastTick > 2 * HEARTBEAT_MS
    lastTick = now
    if (healthy && (subConn.status !== 'ready' || (!late && now - lastBeat > SILENT_AFTER_MS))) set(false)
    emitter.emit({ topic, payload: null }, () => { /* a failed heartbeat is what silence looks like */ })
  }, HEARTBEAT_MS)
  timer.unref()
  // The first beat at once, so a fresh instance is healthy within one round trip.
  emitter.emit({ topic, payload: null }, () => {})
  return {
    healthy: () => healthy,
    onHealthChange (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    stop () {
      stopped = true
      clearInterval(timer)
      subConn.off('close', silent)
      subConn.off('end', silent)
    }
  }
}
