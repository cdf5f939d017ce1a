// Raises serial.expiring (EXPIRY_WARNING_DAYS ahead) and serial.expired. Each serial is claimed by a
// conditional update in the transaction that writes its event, so each is raised exactly once
// whatever the number of instances; batches go on until one comes back short.
import { sql } from 'drizzle-orm'
import { ADVISORY_LOCKS } from '../infra/advisory-locks.ts'
import { queryRows, type Executor } from '../infra/database.ts'
import type { LockedJob } from './job.ts'

/** Serials one notice statement claims. */
export const NOTICE_BATCH = 500
const DAY_MS = 86_400_000

/** One notice kind: claims due serials (the flag goes from null to now) and writes their events. */
async function notice (tx: Executor, kind: 'serial.expiring' | 'serial.expired', now: Date, warningMs: number): Promise<number> {
  const column = sql.raw(kind === 'serial.expiring' ? 'expiring_notified_at' : 'expired_notified_at')
  // Expiring: within the warning window and not yet expired (a serial found already expired gets
  // only serial.expired). SKIP LOCKED: a serial being changed right now is taken next time.
  const due = kind === 'serial.expiring'
    ? sql`expires_at > ${now.toISOString()}::timestamptz and expires_at <= ${new Date(now.getTime() + warningMs).toISOString()}::timestamptz`
    : sql`expires_at <= ${now.toISOString()}::timestamptz`
  const rows = await queryRows<{ id: string }>(tx, sql`
    with claimed as (
      update serials set ${column} = ${now.toISOString()}::timestamptz
      where id in (select id from serials where ${column} is null and status <> 'REVOKED' and expires_at is not null and ${due}
                   order by expires_at limit ${NOTICE_BATCH} for update skip locked)
      returning id, client_id, expires_at
    )
    insert into outbox (type, aggregate_id, client_id, payload)
    select ${kind}::text, id, client_id, jsonb_build_object('serialId', id, 'clientId', client_id, 'expiresAt', expires_at) from claimed order by id
    returning aggregate_id as id`)
  return rows.length
}

export function sweepExpiriesJob ({ expiryWarningDays, eventsWritten }: { expiryWarningDays: number, eventsWritten: () => void }): LockedJob {
  const warningMs = expiryWarningDays * DAY_MS
  return {
    name: 'sweep-expiries',
    everyMs: 60_000,
    lock: ADVISORY_LOCKS.expirySweep,
    async run ({ tx, now }) {
      const n = await notice(tx, 'serial.expired', now, warningMs) + await notice(tx, 'serial.expiring', now, warningMs)
      return { more: n >= NOTICE_BATCH, afterCommit: n > 0 ? eventsWritten : undefined }
    }
  }
}
