// Idempotency keys older than their TTL can no longer be replayed.
import type { Executor } from '../infra/database.ts'
import { pruneIdempotencyKeys } from '../infra/idempotency.ts'
import type { UnlockedJob } from './job.ts'

export function pruneIdempotencyKeysJob ({ db }: { db: Executor }): UnlockedJob {
  return {
    name: 'prune-idempotency-keys',
    everyMs: 3_600_000,
    async run ({ now }) { await pruneIdempotencyKeys(db, now) }
  }
}
