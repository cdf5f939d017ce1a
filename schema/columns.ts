import { text, timestamp } from 'drizzle-orm/pg-core'

/** Primary key column holding a prefixed, time-ordered id (`ser_01J…`); see src/kernel/ids.ts. */
export const id = () => text('id').primaryKey()

export const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow()
}
