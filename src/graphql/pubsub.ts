// `ctx.pubsub.subscribe(topic)` for subscription resolvers, over the shared event bus emitter
// (mqemitter, or mqemitter-redis so events from every instance arrive). One PubSub per GraphQL
// operation: closing it ends every stream it opened, even one waiting for its next event.
import type { MQEmitter } from 'mqemitter'

/** Events a slow subscriber may have queued; past it, its stream ends (the client re-subscribes). */
export const MAX_PENDING_EVENTS = 1000

export interface OperationPubSub {
  subscribe (topics: string | string[]): Promise<AsyncIterable<unknown>>
  close (): void
}

type Listener = (message: { topic: string, payload?: unknown }, done: () => void) => void

export function createOperationPubSub (emitter: MQEmitter): OperationPubSub {
  const streams = new Set<() => void>()
  let closed = false

  return {
    async subscribe (topics) {
      const list = Array.isArray(topics) ? topics : [topics]
      const pending: unknown[] = []
      let waiting: ((result: IteratorResult<unknown>) => void) | null = null
      let ended = false
      const deliver: Listener = (message, done) => {
        if (!ended) {
          if (waiting) { const w = waiting; waiting = null; w({ value: message.payload, done: false }) } else if (pending.length >= MAX_PENDING_EVENTS) end()
          else pending.push(message.payload)
        }
        done()
      }
      function end () {
        if (ended) return
        ended = true
        streams.delete(end)
        for (const [topic, listener] of listeners) emitter.removeListener(topic, listener as never)
        pending.length = 0
        if (waiting) { const w = waiting; waiting = null; w({ value: undefined, done: true }) }
      }
      // One function per topic: mqemitter-redis's prefixed emitter keeps one proxy per function,
      // so a function shared by two topics could not be removed from the first.
      const listeners = list.map((topic): [string, Listener] => [topic, (message, done) => deliver(message, done)])
      // Resolves once every topic is subscribed (for Redis: SUBSCRIBE acknowledged).
      await Promise.all(listeners.map(([topic, listener]) => new Promise<void>((resolve) => emitter.on(topic, listener as never, () => resolve()))))
      streams.add(end)
      if (closed) end()
      const iterator: AsyncIterableIterator<unknown> = {
        next: () => {
          if (pending.length > 0) return Promise.resolve({ value: pending.shift(), done: false })
          if (ended) return Promise.resolve({ value: undefined, done: true })
          return new Promise((resolve) => { waiting = resolve })
        },
        return: () => { end(); return Promise.resolve({ value: undefined, done: true }) },
        [Symbol.asyncIterator] () { return iterator }
      }
      return iterator
    },
    close () {
      closed = true
      for (const end of [...streams]) end()
    }
  }
}
