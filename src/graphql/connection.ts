import { ValidationError } from '../platform/errors.ts'
import { encodeCursor, type Page, type PageArgs } from '../platform/pagination.ts'

interface RelayArgs { first?: number | null, after?: string | null, last?: number | null, before?: string | null }

/** Forward pagination only (first/after), as the contract names. */
export function pageArgs (args: RelayArgs): PageArgs {
  if (args.last != null || args.before != null) {
    throw new ValidationError('Validation failed', [{ field: args.last != null ? 'last' : 'before', message: 'backward pagination is not supported; use first/after' }])
  }
  return { first: args.first, after: args.after }
}

export function toConnection<T> (page: Page<T>, cursorOf: (item: T) => string | number) {
  const edges = page.items.map((node) => ({ cursor: encodeCursor(cursorOf(node)), node }))
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: false,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null
    }
  }
}
