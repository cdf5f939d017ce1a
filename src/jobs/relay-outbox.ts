// The relay's fallback poll: rows written by other instances or left by a crash (a commit kicks the
// relay at once, see OutboxRelay.kick), and claimed rows a usage writer never published.
import type { OutboxRelay } from '../events/outbox-relay.ts'
import type { UnlockedJob } from './job.ts'

/** Fallback poll period, in ms. */
export const RELAY_POLL_MS = 1000

export function relayOutboxJob ({ relay }: { relay: Pick<OutboxRelay, 'reclaim' | 'drain'> }): UnlockedJob {
  return {
    name: 'relay-outbox',
    everyMs: RELAY_POLL_MS,
    async run () {
      // A failed reclaim (logged by the schedule) does not hold up the drain.
      try {
        await relay.reclaim()
      } finally {
        await relay.drain()
      }
    }
  }
}
