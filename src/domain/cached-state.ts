// What the cache holds for more than one feature: each namespace once, with its value type. The
// validation hot path reads them (L1 → L2 → PostgreSQL, readThrough); the features that change
// the rows behind them (serials, devices, policies, clients) invalidate their keys. A namespace
// only one feature uses lives in that feature (the API key caches).
import { defineNamespace } from '../infra/cache.ts'

/** L2 lifetime of cached serial, policy, device and client state, in seconds; invalidation usually comes first. */
export const CACHE_TTL_S = 300

/** The part of a serial the hot path needs. */
export interface SerialState {
  id: string
  clientId: string
  clientNumber: string
  status: 'ACTIVE' | 'SUSPENDED' | 'REVOKED'
  /** epoch ms; null = never expires */
  expiresAt: number | null
  /** The device limit. */
  maxDevices: number
  activeDevices: number
  isDemo: boolean
  /** null = no policy (node-locked, no entitlements, no activation cap) */
  policyId: string | null
}

/** The part of a policy the lease rules need. */
export interface LeaseTerms { floating: boolean, heartbeatSeconds: number, heartbeatGraceSeconds: number }

/** The policy's rules as the hot path needs them. */
export interface PolicyTerms extends LeaseTerms {
  id: string
  /** null = unlimited */
  maxActivationsPerDay: number | null
  /** null = no cap beyond the certificate maximum */
  offlineTtlDays: number | null
  entitlements: string[]
}

/** A slot the device holds: 1 = node-locked (no lease), else its lease as last stored (epoch ms). */
export type DeviceSlot = 1 | { lease: number }

/** A client's status (ACTIVE | SUSPENDED), which every validation of its serials checks. */
export interface ClientStatusEntry { status: string }

/**
 * `s2:<numberHash>`: a serial by the HMAC of its normalised number. `s2` since the state names its
 * device limit maxDevices: during a rolling upgrade old instances keep reading their own `s:` entries.
 */
export const serialStateCache = defineNamespace<SerialState, [numberHash: string]>('s2', CACHE_TTL_S, (numberHash) => numberHash)
/** `d:<serialId>:<deviceId>`: a device's slot on a serial; absent = not known to hold one. */
export const deviceSlotCache = defineNamespace<DeviceSlot, [serialId: string, deviceId: string]>('d', CACHE_TTL_S, (serialId, deviceId) => `${serialId}:${deviceId}`)
/** `p:<policyId>` */
export const policyTermsCache = defineNamespace<PolicyTerms, [policyId: string]>('p', CACHE_TTL_S, (policyId) => policyId)
/** `c:<clientId>` */
export const clientStatusCache = defineNamespace<ClientStatusEntry, [clientId: string]>('c', CACHE_TTL_S, (clientId) => clientId)
