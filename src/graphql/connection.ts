// Relay cursor connections that page forward only. The keyset queries behind every list walk one
// way (by id, or by seq for the audit log), so the schema offers exactly first/after: a client
// never sees last/before arguments that would only be refused. A client keeps the cursors it has
// seen to go back, which is what Relay's and urql's forward pagination do anyway.
import type { ArgBuilder, ObjectRef } from '@pothos/core'
import { builder } from './builder.ts'
import { encodeCursor, MAX_PAGE, type Page, type PageArgs } from '../kernel/pagination.ts'

type Types = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never

export interface ForwardArgs { first?: number | null, after?: string | null }

/** The connection and edge types of one list: `ClientConnection` and `ClientEdge`. */
export function connectionType<Shape> (type: ObjectRef<Types, Shape>, name: string, noun: string, order = 'oldest first') {
  return builder.connectionObject({
    type,
    name: `${name}Connection`,
    description: `A page of ${noun}, ${order}`
  }, {
    name: `${name}Edge`,
    description: `One of the ${noun} with its cursor`
  })
}

/** first/after, with the page size bounds the services enforce. */
export function forwardArgs (arg: ArgBuilder<Types>) {
  return {
    first: arg.int({ description: `How many items to return: 1 to ${MAX_PAGE} (default 20)` }),
    after: arg.string({ description: 'Return the items after this cursor (pageInfo.endCursor of the previous page)' })
  }
}

export function pageArgs (args: ForwardArgs): PageArgs {
  return { first: args.first, after: args.after }
}

export function toConnection<T> (page: Page<T>, cursorOf: (item: T) => string | number) {
  const edges = page.items.map((node) => ({ cursor: encodeCursor(cursorOf(node)), node }))
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      // Forward-only paging: the spec allows false here.
      hasPreviousPage: false,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null
    }
  }
}
