// One mapping from anything a GraphQL request can throw or return to the contract's error shape
// (`extensions` = the REST error body), shared by mercurius's errorFormatter, the HTTP route and
// the WebSocket server.
import { GraphQLError } from 'graphql'
import type { FastifyBaseLogger } from 'fastify'
import { ContractError, RateLimitError, ServiceUnavailableError, toContractError, type ErrorBody } from '../../kernel/errors.ts'
import { withoutSuggestions } from './document-limits.ts'

export interface FormattedError {
  message: string
  locations?: ReadonlyArray<{ line: number, column: number }>
  path?: ReadonlyArray<string | number>
  extensions: ErrorBody & Record<string, unknown>
}

export interface FormatOptions {
  log: FastifyBaseLogger
  /** Strip "Did you mean …?" hints (introspection off). */
  hideSuggestions: boolean
}

/**
 * Already in the contract's shape: a plain formatted object, or a GraphQLError built from one
 * (the WebSocket server hands graphql-ws such errors, which come back here through onError).
 */
function isFormatted (error: unknown): error is FormattedError {
  const e = error as { extensions?: { code?: unknown, statusCode?: unknown } } | null
  const carrier = !(error instanceof Error) || (error instanceof GraphQLError && error.originalError == null)
  return carrier && typeof e?.extensions?.code === 'string' && typeof e.extensions.statusCode === 'number'
}

/** Mercurius wraps parse and validation failures: one error holding a list of them. */
function unwrap (error: unknown): unknown[] {
  const nested = (error as { errors?: unknown } | null)?.errors
  if (error instanceof Error && !(error instanceof ContractError) && !(error instanceof GraphQLError) && Array.isArray(nested)) return nested
  return [error]
}

export interface Formatted { errors: FormattedError[], contracts: ContractError[] }

export function formatErrors (thrown: readonly unknown[], options: FormatOptions): Formatted {
  const errors: FormattedError[] = []
  const contracts: ContractError[] = []
  for (const error of thrown.flatMap(unwrap)) {
    if (isFormatted(error)) {
      errors.push(error)
      const retryAfter = error.extensions.retryAfter
      contracts.push(error.extensions.code === 'RATE_LIMITED' && typeof retryAfter === 'number'
        ? new RateLimitError(retryAfter, error.extensions.message)
        : error.extensions.code === 'SERVICE_UNAVAILABLE'
          ? new ServiceUnavailableError(error.extensions.message, typeof retryAfter === 'number' ? retryAfter : undefined)
          : new ContractError(error.extensions.code, error.extensions.message))
      continue
    }
    const graphqlError = error instanceof GraphQLError ? error : undefined
    const original = graphqlError?.originalError ?? (graphqlError ? undefined : error)
    const contract = toContractError(original ?? graphqlError)
    if (contract.code === 'INTERNAL') options.log.error({ err: original ?? error, path: graphqlError?.path }, 'GraphQL request failed')
    const message = contract.code === 'INTERNAL'
      ? 'Internal server error'
      : options.hideSuggestions ? withoutSuggestions(contract.message) : contract.message
    const body = contract.toBody()
    // Retry-After for clients that see no headers (a WebSocket), in seconds.
    const retryAfter = contract instanceof RateLimitError || contract instanceof ServiceUnavailableError ? { retryAfter: contract.retryAfterSeconds } : {}
    errors.push({
      message,
      ...(graphqlError?.locations ? { locations: graphqlError.locations } : {}),
      ...(graphqlError?.path ? { path: graphqlError.path } : {}),
      extensions: { ...body, message, ...retryAfter }
    })
    contracts.push(contract)
  }
  return { errors, contracts }
}
