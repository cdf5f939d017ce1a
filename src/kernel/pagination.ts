// Keyset pagination over time-ordered ids (see ids.ts): the cursor is the last id seen.
import { ValidationError } from './errors.ts'

export const MAX_PAGE = 100

export interface PageArgs { first?: number | null, after?: string | null }
export interface Page<T> { items: T[], hasNextPage: boolean }

export function pageSize (first: number | null | undefined, fallback = 20): number {
  const size = first ?? fallback
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE) {
    throw new ValidationError('Validation failed', [{ field: 'first', message: `must be between 1 and ${MAX_PAGE}` }])
  }
  return size
}

export function decodeCursor (after: string | null | undefined): string | undefined {
  if (!after) return undefined
  const decoded = Buffer.from(after, 'base64url').toString('utf8')
  if (!/^[a-z]{3}_[0-9A-Z]{26}$|^\d+$/.test(decoded)) {
    throw new ValidationError('Validation failed', [{ field: 'after', message: 'is not a cursor from this API' }])
  }
  return decoded
}

export function encodeCursor (id: string | number): string {
  return Buffer.from(String(id)).toString('base64url')
}

/** Fetch size+1 rows, then call this to trim and tell whether more exist. */
export function toPage<T> (rows: T[], size: number): Page<T> {
  return { items: rows.slice(0, size), hasNextPage: rows.length > size }
}
