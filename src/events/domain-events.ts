// Domain events: written to the outbox in the transaction of the change, relayed after commit.
// One member per event type, discriminated by `type`: a writer's payload is checked against its
// type, and a consumer that tests `type` reads its payload without a cast.
import { sql, type SQL } from 'drizzle-orm'
import { outbox } from '../../schema/index.ts'
import type { Executor } from '../infra/database.ts'

/** Every event about a serial or one of its devices names both. */
type SerialRef = { serialId: string, clientId: string }
type DeviceRef = SerialRef & { deviceId: string }

/** A policy's settings as the input sent them (create: absent or null = the default). */
type PolicySettings = {
  name: string
  maxDevices: number
  durationDays: number | null
  floating: boolean | null
  heartbeatSeconds: number | null
  heartbeatGraceSeconds: number | null
  maxActivationsPerDay: number | null
  offlineTtlDays: number | null
  entitlements: string[] | null
}

/**
 * The payload of each event type, as its consumers read it (JSON: timestamps are ISO 8601
 * strings). Written by writeEvents, or in SQL where marked.
 */
export type EventPayloads = {
  'client.created': { clientId: string, clientNumber: string }
  /** Names of the fields the update changed. */
  'client.updated': { clientId: string, fields: string[] }
  'client.suspended': { clientId: string, status: 'ACTIVE' | 'SUSPENDED' }
  'client.reinstated': { clientId: string, status: 'ACTIVE' | 'SUSPENDED' }
  /** SQL: insertSerials (serial-service.ts). batchId null = created alone. */
  'serial.created': SerialRef & { batchId: string | null }
  /** Only the fields the update sent. */
  'serial.updated': SerialRef & { maxDevices?: number, /** @deprecated the same as maxDevices, kept for a release */ maxUsageCount?: number, expiresAt?: string | null, metadata?: Record<string, unknown> }
  'serial.suspended': SerialRef & { status: 'SUSPENDED' }
  'serial.reinstated': SerialRef & { status: 'ACTIVE' }
  'serial.revoked': SerialRef & { status: 'REVOKED', reason: string }
  /** Also SQL: activateInOneStatement (validation/activation-statement.ts). */
  'device.activated': DeviceRef
  /** staff = deactivated by a user, device = released by the device itself. */
  'device.deactivated': DeviceRef & { by: 'staff' | 'device' }
  /** SQL: insertUsageBatch (usage-writer.ts). The stored usage event without its ip. */
  'usage.recorded': { id: string, seq: number, serialId: string, clientId: string, deviceId: string, kind: string, quantity: number, feature: string | null, recordedAt: string }
  'policy.created': { policyId: string } & Pick<PolicySettings, 'name' | 'maxDevices'> & Partial<Omit<PolicySettings, 'name' | 'maxDevices'>>
  /** Only the fields the update changed. */
  'policy.updated': { policyId: string } & Partial<PolicySettings>
  /** A lapsed lease freed; at = when. */
  'device.culled': DeviceRef & { at: string }
  /** code: the ValidationCode that refused the new device. */
  'device.limit_reached': DeviceRef & { code: string }
  /** SQL: the expiry notices (jobs/sweep-expiries.ts). */
  'serial.expiring': SerialRef & { expiresAt: string }
  'serial.expired': SerialRef & { expiresAt: string }
}

/** A domain event of one type (or, by default, of any type: the union of every member). */
export type DomainEvent<T extends DomainEventType = DomainEventType> = { [K in T]: {
  type: K
  /** The object the event is about; events of one aggregate are published in order. */
  aggregateId: string
  clientId: string | null
  payload: EventPayloads[K]
} }[T]

export type DomainEventType = keyof EventPayloads
export type EventPayload<T extends DomainEventType> = EventPayloads[T]

/** Compiles only when `types` lists every event type. */
function everyType<const T extends readonly DomainEventType[]> (types: T & ([Exclude<DomainEventType, T[number]>] extends [never] ? unknown : { missing: Exclude<DomainEventType, T[number]> })): T {
  return types
}

export const DOMAIN_EVENTS = everyType([
  'client.created', 'client.updated', 'client.suspended', 'client.reinstated',
  'serial.created', 'serial.updated', 'serial.suspended', 'serial.reinstated', 'serial.revoked',
  'device.activated', 'device.deactivated',
  'usage.recorded',
  'policy.created', 'policy.updated',
  'device.culled', 'device.limit_reached', 'serial.expiring', 'serial.expired'
])

/** Events about one serial that the serialChanged subscription carries. */
export const SERIAL_CHANGE_EVENTS = [
  'serial.created', 'serial.updated', 'serial.suspended', 'serial.reinstated', 'serial.revoked',
  'serial.expiring', 'serial.expired', 'device.culled', 'device.limit_reached'
] as const satisfies readonly DomainEventType[]

export type SerialChangeType = typeof SERIAL_CHANGE_EVENTS[number]

/** Narrows an event (or a published one) to the serial changes, whose payloads all name the serial. */
export function isSerialChange<E extends { type: DomainEventType }> (event: E): event is Extract<E, { type: SerialChangeType }> {
  return (SERIAL_CHANGE_EVENTS as readonly DomainEventType[]).includes(event.type)
}

/**
 * For events written in SQL: `jsonb_build_object('field', <expression>, …)` of a payload, one
 * expression per field (optional ones included), so the statement and the type cannot drift.
 * The keys become constant text: the statement stays of fixed text.
 */
export function payloadSql<T extends DomainEventType> (_type: T, fields: { [K in keyof EventPayloads[T]]-?: SQL }): SQL {
  const pairs = Object.entries(fields as Record<string, SQL>).map(([key, value]) => {
    if (!/^[A-Za-z]+$/.test(key)) throw new TypeError(`payload field ${key} is not a plain name`)
    return sql`${sql.raw(`'${key}'`)}, ${value}`
  })
  return sql`jsonb_build_object(${sql.join(pairs, sql`, `)})`
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
