// Pure policy rules: entitlement codes, the activation window and policy expiry.
import { z } from 'zod'

/** Entitlement code: 1–64 of A-Z 0-9 _ . - (input is case-insensitive, stored upper-case). */
export const entitlementSchema = z.string().trim().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1–64 characters of A-Z 0-9 _ . -').transform((s) => s.toUpperCase())

/** Upper-cased, duplicates dropped, sorted: the same set always prints the same way. */
export const entitlementsSchema = z.array(entitlementSchema).max(100).transform((list) => [...new Set(list)].sort())

/** Length of the activation-cap window (maxActivationsPerDay), in ms: rolling, not per calendar day. */
export const ACTIVATION_WINDOW_MS = 86_400_000

/** Expiry of a serial created at `createdAt` under a policy lasting `durationDays` (null = never). */
export function policyExpiry (createdAt: Date, durationDays: number | null): Date | null {
  return durationDays === null ? null : new Date(createdAt.getTime() + durationDays * 86_400_000)
}
