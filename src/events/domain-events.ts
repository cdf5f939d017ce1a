// Domain events: written to the outbox in the transaction of the change, relayed after commit.
import { outbox } from '../../schema/index.ts'
import type { Executor } from '../infra/database.ts'

export const DOMAIN_EVENTS = [
  'client.created', 'client.updated', 'client.suspended', 'client.reinstated',
  'serial.created', 'serial.updated', 'serial.suspended', 'serial.reinstated', 'serial.revoked',
  'device.activated', 'device.deactivated',
  'usage.recorded',
  'policy.created', 'policy.updated',
  'device.culled', 'device.limit_reached', 'serial.expiring', 'serial.expired'
] as const

export type DomainEventType = typeof DOMAIN_EVENTS[number]

/** Events about one serial that the serialChanged subscription carries. */
export const SERIAL_CHANGE_EVENTS: DomainEventType[] = [
  'serial.created', 'serial.updated', 'serial.suspended', 'serial.reinstated', 'serial.revoked',
  'serial.expiring', 'serial.expired', 'device.culled', 'device.limit_reached'
]

export interface DomainEvent {
  type: DomainEventType
  /** The object the event is about; events of one aggregate are published in order. */
  aggregateId: string
  clientId: string | null
  payload: Record<string, unknown>
}

/** Bus topic of a published event: `event/<type>/<clientId>` (`_` when not tied to a client). */
export function eventTopic (type: DomainEventType | '+', clientId: string | null | '+'): string {
  return `event/${type}/${clientId ?? '_'}`
}

export async function writeEvents (tx: Executor, events: DomainEvent[]): Promise<void> {
  // Chunks keep each statement under PostgreSQL's 65,535 parameter limit.
  for (let i = 0; i < events.length; i += 5000) {
    await tx.insert(outbox).values(events.slice(i, i + 5000).map((e) => ({
      type: e.type, aggregateId: e.aggregateId, clientId: e.clientId, payload: e.payload
    })))
  }
}
