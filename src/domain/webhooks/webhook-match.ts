// Which webhooks want an event: the one statement of the rule. It is a SQL condition on a row of
// `webhooks`, so the relay's enqueue and the usage writer's single statement (which decides in the
// same statement whether a usage event needs the relay at all) ask exactly the same question.
import { sql, type SQL } from 'drizzle-orm'
import { webhooks } from '../../../schema/index.ts'
import type { DomainEventType } from '../../events/domain-events.ts'

/**
 * True for a row of `webhooks` (columns qualified by the table name: select `from webhooks`,
 * unaliased) that wants an event of type `eventType` about client `clientId`, both SQL
 * expressions: the webhook is enabled and not deleted, it is for that client or for every client
 * (client_id null), and it subscribed to that type or to every type (no types).
 */
export function webhookWants (eventType: SQL, clientId: SQL): SQL {
  const w = webhooks
  return sql`${w.enabled} and ${w.deletedAt} is null and (${w.clientId} is null or ${w.clientId} = ${clientId}) and (cardinality(${w.events}) = 0 or ${eventType} = any(${w.events}))`
}

/** An event type as constant SQL text (the statement stays of fixed text; no parameter). */
export function eventTypeSql (type: DomainEventType): SQL {
  if (!/^[a-z_]+\.[a-z_]+$/.test(type)) throw new TypeError(`${type} is not an event type`)
  return sql.raw(`'${type}'`)
}
