// A serial's row as the validation hot path caches it (SerialState, in domain/cached-state.ts), and
// the device-id schema. Kept apart from the serial use cases so that devices and validation need
// not import them.
import { z } from 'zod'
import type { serials } from '../../../schema/index.ts'
import { jsonObjectInput } from '../../kernel/input.ts'
import type { SerialState } from '../cached-state.ts'

export type SerialRow = typeof serials.$inferSelect

export const deviceIdSchema = z.string().trim().min(1).max(128).regex(/^[\x20-\x7E]+$/, 'must be printable ASCII')
export const deviceInfoSchema = jsonObjectInput(2048)

export function stateOf (row: SerialRow, clientNumber: string): SerialState {
  return {
    id: row.id,
    clientId: row.clientId,
    clientNumber,
    status: row.status as SerialState['status'],
    expiresAt: row.expiresAt ? row.expiresAt.getTime() : null,
    maxDevices: row.maxDevices,
    activeDevices: row.activeDevices,
    isDemo: row.isDemo,
    policyId: row.policyId
  }
}
