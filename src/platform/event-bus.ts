// Event bus: in-process mqemitter, or mqemitter-redis so every instance sees every event.
// The same emitter carries GraphQL subscriptions (mercurius) and cache invalidations.
import mqemitter, { type MQEmitter } from 'mqemitter'
import mqemitterRedis from 'mqemitter-redis'

import type { Redis } from 'ioredis'
import { createRedis, pingRedis } from './redis.ts'

export type BusHandler = (payload: unknown) => void | Promise<void>

export interface IEventBus {
  readonly kind: 'redis' | 'memory'
  readonly emitter: MQEmitter
  publish (topic: string, payload: unknown): Promise<void>
  /** Resolves once the subscription is live (for Redis: after SUBSCRIBE is acknowledged). */
  subscribe (topic: string, handler: BusHandler): Promise<() => Promise<void>>
  ping (): Promise<number>
  close (): Promise<void>
}

function wrap (kind: 'redis' | 'memory', emitter: MQEmitter, ping: () => Promise<number>, disconnect = () => {}): IEventBus {
  let closed = false
  return {
    kind,
    emitter,
    publish: (topic, payload) => new Promise((resolve, reject) => {
      emitter.emit({ topic, payload }, (error) => error ? reject(error) : resolve())
    }),
    subscribe: (topic, handler) => new Promise((resolve) => {
      const listener = (message: Record<string, unknown> & { topic: string }, done: () => void) => {
        Promise.resolve().then(() => handler(message.payload)).catch(() => {}).finally(done)
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

export function createEventBus (redis: { url: string, prefix: string } | undefined): IEventBus {
  if (!redis) {
    return wrap('memory', mqemitter({ concurrency: 0 }), async () => 0)
  }
  const pubConn: Redis = createRedis(redis.url, { enableOfflineQueue: true })
  // No ready check on the subscriber: its INFO would race the first SUBSCRIBE and throw.
  const subConn: Redis = createRedis(redis.url, { enableOfflineQueue: true, enableReadyCheck: false, commandTimeout: undefined })
  // Topics are prefixed so deployments (or test runs) sharing one Redis never hear each other.
  const { MQEmitterRedisPrefix } = mqemitterRedis as unknown as { MQEmitterRedisPrefix: new (prefix: string, options: object) => MQEmitter }
  const emitter = new MQEmitterRedisPrefix(`${redis.prefix}/`, { pubConn, subConn })
  // mqemitter-redis re-emits connection errors on `state`; unheard, an EventEmitter 'error'
  // would crash the process while Redis is down. The readiness check reports the outage instead.
  ;(emitter as unknown as { state: { on (event: 'error', fn: () => void): void } }).state.on('error', () => {})
  return wrap('redis', emitter, () => pingRedis(pubConn), () => { pubConn.disconnect(); subConn.disconnect() })
}
