// Pure lease arithmetic for floating policies: no I/O, `now` passed in (epoch ms).
import type { LeaseTerms } from '../cached-state.ts'

/** When a lease renewed at `now` lapses; null for node-locked slots, which never lapse. */
export function leaseUntil (terms: LeaseTerms | null, now: number): number | null {
  if (!terms?.floating) return null
  return now + (terms.heartbeatSeconds + terms.heartbeatGraceSeconds) * 1000
}

/** A lease lapses at its expiry instant: a heartbeat exactly then is too late. */
export function isLapsed (leaseExpiresAt: number | null, now: number): boolean {
  return leaseExpiresAt !== null && leaseExpiresAt <= now
}

/**
 * The background sweep's period in ms. The contract frees a lapsed slot at the latest
 * heartbeatSeconds after the lapse; heartbeatSeconds is at least 5, so a 5 s sweep always meets it.
 */
export const SWEEP_INTERVAL_MS = 5000

/** Caps a certificate's requested lifetime by the policy's offline TTL (null = no cap). */
export function capTtlDays (requested: number, offlineTtlDays: number | null): number {
  return offlineTtlDays === null ? requested : Math.min(requested, offlineTtlDays)
}
