// Published outbox rows are kept OUTBOX_RETENTION_MS for inspection, then deleted.
import type { OutboxRelay } from '../events/outbox-relay.ts'
import type { UnlockedJob } from './job.ts'

export function pruneOutboxJob ({ relay }: { relay: Pick<OutboxRelay, 'prune'> }): UnlockedJob {
  return {
    name: 'prune-outbox',
    everyMs: 60_000,
    async run ({ now }) { await relay.prune(now) }
  }
}
