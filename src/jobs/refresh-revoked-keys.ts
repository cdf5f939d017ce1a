// The in-memory set of revoked API keys is kept current through the event bus; this re-read is the
// last resort (e.g. the revoking instance died before it could publish).
import type { RevokedKeySet } from '../domain/api-keys/revoked-keys.ts'
import type { UnlockedJob } from './job.ts'

/** Safety-net reload period, in ms. */
export const REVOKED_KEYS_REFRESH_MS = 60_000

export function refreshRevokedKeysJob ({ revokedKeys }: { revokedKeys: Pick<RevokedKeySet, 'load'> }): UnlockedJob {
  return {
    name: 'refresh-revoked-keys',
    everyMs: REVOKED_KEYS_REFRESH_MS,
    async run () { await revokedKeys.load() }
  }
}
