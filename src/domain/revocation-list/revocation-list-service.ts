// The signed revocation list for offline clients: ids of revoked serials that may still have a
// live certificate. A certificate lives at most MAX_CERTIFICATE_TTL_DAYS and never past its
// serial's expiry, so older revocations and expired serials drop out and the list stays small.
import { createHash } from 'node:crypto'
import { and, asc, eq, gt, isNull, or } from 'drizzle-orm'
import { serials } from '../../../schema/index.ts'
import { eventTopic } from '../../events/domain-events.ts'
import type { IEventBus } from '../../infra/event-bus.ts'
import type { Deps } from '../deps.ts'

/** The longest certificate the service issues (issueLicenseCertificate's ttlDays maximum). */
export const MAX_CERTIFICATE_TTL_DAYS = 365
/** A list's life (exp − iat), in seconds: clients should fetch a fresh one before then. */
export const LIST_TTL_S = 24 * 3600
/** How long an instance reuses its list before asking the database again, in ms (a revocation event refreshes it at once). */
export const REFRESH_MS = 10_000

export interface RevocationList {
  /** base64url(payload).base64url(signature), like a certificate. */
  list: string
  algorithm: string
  keyId: string
  issuedAt: Date
  expiresAt: Date
  /** Strong validator: the same on every instance for the same content in the same half-life. */
  etag: string
}

export function createRevocationListService (deps: Pick<Deps, 'database' | 'signer' | 'clock'>) {
  const { signer, clock, database } = deps
  let current: { value: RevocationList, contentKey: string, checkedAt: number } | undefined
  let building: Promise<RevocationList> | undefined

  async function revokedIds (now: Date): Promise<string[]> {
    const cutoff = new Date(now.getTime() - MAX_CERTIFICATE_TTL_DAYS * 86_400_000)
    // The primary, not the replica: a revocation should reach offline clients without replica lag.
    const rows = await database.db.select({ id: serials.id }).from(serials)
      .where(and(eq(serials.status, 'REVOKED'), gt(serials.revokedAt, cutoff), or(isNull(serials.expiresAt), gt(serials.expiresAt, now))))
      .orderBy(asc(serials.id))
    return rows.map((r) => r.id)
  }

  async function build (): Promise<RevocationList> {
    const now = clock()
    const ids = await revokedIds(now)
    // Content and half-life window decide the ETag, so instances agree and a 304 never hands out
    // a list with less than half its life left.
    const window = Math.floor(now.getTime() / (LIST_TTL_S * 500))
    const contentKey = createHash('sha256').update(`${signer.keyId}\n${window}\n${ids.join('\n')}`).digest('base64url').slice(0, 27)
    if (current && current.contentKey === contentKey) {
      current.checkedAt = now.getTime()
      return current.value
    }
    const iat = Math.floor(now.getTime() / 1000)
    const payload = { v: 1, kid: signer.keyId, alg: signer.algorithm, iat, exp: iat + LIST_TTL_S, serials: ids }
    const encoded = Buffer.from(JSON.stringify(payload)).toString('base64url')
    const signature = signer.sign(Buffer.from(encoded, 'ascii')).toString('base64url')
    const value: RevocationList = {
      list: `${encoded}.${signature}`,
      algorithm: signer.algorithm,
      keyId: signer.keyId,
      issuedAt: new Date(iat * 1000),
      expiresAt: new Date((iat + LIST_TTL_S) * 1000),
      etag: `"${contentKey}"`
    }
    current = { value, contentKey, checkedAt: now.getTime() }
    return value
  }

  return {
    /** The current list; one database query per REFRESH_MS per instance however many callers. */
    async current (): Promise<RevocationList> {
      if (current && clock().getTime() - current.checkedAt < REFRESH_MS) return current.value
      building ??= build().finally(() => { building = undefined })
      return building
    },

    /** A serial was revoked (or events may have been missed): the next call asks the database. */
    invalidate (): void {
      if (current) current.checkedAt = -Infinity
    },

    /** Every instance hears revocations through the bus; a silent spell may have hidden some. Returns a stop. */
    async listen (bus: IEventBus): Promise<() => Promise<void>> {
      const invalidate = () => { if (current) current.checkedAt = -Infinity }
      const unsubscribe = await bus.subscribe(eventTopic('serial.revoked', '+'), invalidate)
      const offHealth = bus.onHealthChange((healthy) => { if (healthy) invalidate() })
      return async () => { offHealth(); await unsubscribe() }
    }
  }
}

export type RevocationListService = ReturnType<typeof createRevocationListService>
