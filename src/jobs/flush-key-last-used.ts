// API keys' last-use times are remembered in memory per request and written here.
import type { ApiKeyService } from '../domain/api-keys/api-key-service.ts'
import type { UnlockedJob } from './job.ts'

export function flushKeyLastUsedJob ({ apiKeys }: { apiKeys: Pick<ApiKeyService, 'flushLastUsed'> }): UnlockedJob {
  return {
    name: 'flush-key-last-used',
    everyMs: 30_000,
    async run () { await apiKeys.flushLastUsed() }
  }
}
