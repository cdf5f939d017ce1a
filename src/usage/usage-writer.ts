// Adaptive group commit for usage events: a row is written at once when the writer is idle;
// rows arriving while a commit is in flight wait and go together in the next transaction (at
// most BATCH). Every caller is answered only after its transaction committed: nothing is
// acknowledged before it is durable.
import { usageEvents } from '../../schema/index.ts'
import { writeEvents } from '../events/domain-events.ts'
import type { Db } from '../platform/database.ts'

export type UsageInsert = typeof usageEvents.$inferInsert
export type UsageRow = typeof usageEvents.$inferSelect

const BATCH = 500

interface Pending { row: UsageInsert, resolve: (row: UsageRow) => void, reject: (error: unknown) => void }

export interface UsageWriter { write (row: UsageInsert): Promise<UsageRow> }

export function createUsageWriter (db: Db, committed: () => void, outboxPayload: (row: UsageRow) => Record<string, unknown>): UsageWriter {
  const queue: Pending[] = []
  let flushing = false

  async function flush (): Promise<void> {
    flushing = true
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, BATCH)
        try {
          const rows = await db.transaction(async (tx) => {
            const inserted = await tx.insert(usageEvents).values(batch.map((p) => p.row)).returning()
            await writeEvents(tx, inserted.map((r) => ({ type: 'usage.recorded', aggregateId: r.serialId, clientId: r.clientId, payload: outboxPayload(r) })))
            return inserted
          })
          const byId = new Map(rows.map((r) => [r.id, r]))
          for (const p of batch) p.resolve(byId.get(p.row.id!)!)
          committed()
        } catch (error) {
          for (const p of batch) p.reject(error)
        }
      }
    } finally {
      flushing = false
    }
  }

  return {
    write (row) {
      return new Promise<UsageRow>((resolve, reject) => {
        queue.push({ row, resolve, reject })
        if (!flushing) void flush()
      })
    }
  }
}
