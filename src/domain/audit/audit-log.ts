// Tamper-evident audit log: each entry stores the hash of the previous one. Appends take a
// transaction-scoped advisory lock so the chain stays linear across instances.
import { asc, desc, gt, sql } from 'drizzle-orm'
import { auditLog } from '../../../schema/index.ts'
import type { Actor, RequestMeta } from '../../kernel/access.ts'
import { sha256Hex } from '../../infra/crypto.ts'
import { ADVISORY_LOCKS } from '../../infra/advisory-locks.ts'
import type { Executor } from '../../infra/database.ts'
import { newId } from '../../kernel/ids.ts'
import { canonicalJson } from '../../../packages/client/src/verify.ts'

export const GENESIS_HASH = '0'.repeat(64)

export interface AuditInput {
  action: string
  targetType: string
  targetId: string
  clientId: string | null
  changes?: Record<string, unknown>
}

type AuditRow = typeof auditLog.$inferSelect

export function entryHash (prevHash: string, row: Omit<AuditRow, 'seq' | 'hash' | 'prevHash'>): string {
  const body = canonicalJson({
    id: row.id,
    actorId: row.actorId,
    actorRole: row.actorRole,
    action: row.action,
    targetType: row.targetType,
    targetId: row.targetId,
    clientId: row.clientId,
    changes: row.changes,
    ip: row.ip,
    requestId: row.requestId,
    createdAt: row.createdAt.toISOString()
  })
  return sha256Hex(`${prevHash}\n${body}`)
}

/** Appends entries (in order) inside the caller's transaction. */
export async function appendAudit (tx: Executor, actor: Actor, meta: RequestMeta | undefined, entries: AuditInput[], now = new Date()): Promise<void> {
  if (entries.length === 0) return
  await tx.execute(sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.auditChain})`)
  const [last] = await tx.select({ hash: auditLog.hash }).from(auditLog).orderBy(desc(auditLog.seq)).limit(1)
  let prevHash = last?.hash ?? GENESIS_HASH
  const rows = entries.map((entry) => {
    const row = {
      id: newId('aud'),
      actorId: actor.id,
      actorRole: actor.role ?? 'ANONYMOUS',
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId,
      clientId: entry.clientId,
      changes: entry.changes ?? {},
      ip: meta?.ip ?? null,
      requestId: meta?.requestId ?? null,
      // Millisecond precision both in JS and in the hash; PostgreSQL keeps it exactly.
      createdAt: new Date(now.getTime())
    }
    const hash = entryHash(prevHash, row)
    const full = { ...row, prevHash, hash }
    prevHash = hash
    return full
  })
  await tx.insert(auditLog).values(rows)
}

export interface AuditVerification { valid: boolean, checked: number, firstBrokenId: string | null }

/** Walks the chain in order; the first entry whose links or hash do not match is reported. */
export async function verifyAuditChain (db: Executor, batchSize = 1000): Promise<AuditVerification> {
  let prevHash = GENESIS_HASH
  let checked = 0
  let afterSeq = 0
  for (;;) {
    const rows = await db.select().from(auditLog).where(gt(auditLog.seq, afterSeq)).orderBy(asc(auditLog.seq)).limit(batchSize)
    if (rows.length === 0) return { valid: true, checked, firstBrokenId: null }
    for (const row of rows) {
      if (row.prevHash !== prevHash || entryHash(prevHash, row) !== row.hash) {
        return { valid: false, checked, firstBrokenId: row.id }
      }
      prevHash = row.hash
      checked++
      afterSeq = row.seq
    }
  }
}
