// What serials, devices and validation share: the cached state of a serial, its cache keys and
// the device-id schema. Kept apart so that devices and validation need not import the serial use
// cases (and the serial use cases need neither of them).
import { z } from 'zod'
import type { serials } from '../../../schema/index.ts'
import { jsonObjectInput } from '../../kernel/input.ts'
import type { SerialState } from './serial-rules.ts'

export type SerialRow = typeof serials.$inferSelect

/** L2 lifetime of cached serial, policy and device state, in seconds; invalidation usually comes first. */
export const CACHE_TTL_S = 300
export const serialCacheKey = (numberHash: string) => `s:${numberHash}`
export const deviceCacheKey = (serialId: string, deviceId: string) => `d:${serialId}:${deviceId}`
export const policyCacheKey = (policyId: string) => `p:${policyId}`

export const deviceIdSchema = z.string().trim().min(1).max(128).regex(/^[\x20-\x7E]+$/, 'must be printable ASCII')
export const deviceInfoSchema = jsonObjectInput(2048)

export function stateOf (row: SerialRow, clientNumber: string): SerialState {
  return {
    id: row.id,
    clientId: row.clientId,
    clientNumber,
    status: row.status as SerialState['status'],
    expiresAt: row.expiresAt ? row.expiresAt.getTime() : null,
    maxUsageCount: row.maxUsageCount,
    activeDevices: row.activeDevices,
    isDemo: row.isDemo,
    policyId: row.policyId
  }
}
