// GraphQL over HTTP from the pages: the service's own public API, same origin, nothing else.

export interface GraphQLErrorItem { message: string, extensions?: { code?: string, errors?: Array<{ field: string, message: string }> } }

/** A GraphQL answer with errors: the first error's contract code and message. */
export class ApiError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

export async function graphql<T> (query: string, variables: Record<string, unknown> = {}, apiKey?: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' }
  if (apiKey) headers.authorization = `Bearer ${apiKey}`
  let response: Response
  try {
    response = await fetch('/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }), credentials: 'omit', cache: 'no-store' })
  } catch {
    throw new ApiError('NETWORK', 'The service cannot be reached')
  }
  let body: { data?: T | null, errors?: GraphQLErrorItem[], code?: string, message?: string }
  try {
    body = await response.json()
  } catch {
    throw new ApiError('INTERNAL', `The service answered ${response.status}`)
  }
  const first = body.errors?.[0]
  if (first) {
    const field = first.extensions?.errors?.[0]
    throw new ApiError(first.extensions?.code ?? 'INTERNAL', field ? `${field.field}: ${field.message}` : first.message)
  }
  // A 429 before GraphQL runs comes in the REST error shape.
  if (!body.data) throw new ApiError(body.code ?? 'INTERNAL', body.message ?? `The service answered ${response.status}`)
  return body.data
}

/** Text for a person: the code names the case, the message the detail. */
export function describeError (error: unknown): string {
  if (error instanceof ApiError) {
    switch (error.code) {
      case 'NOT_FOUND': return 'Not found.'
      case 'RATE_LIMITED': return 'Too many requests from this address; wait a minute and try again.'
      case 'AUTHENTICATION_ERROR': return 'The API key was not accepted.'
      case 'FORBIDDEN': return 'Your role may not do this.'
      case 'NETWORK': return error.message
      default: return `${error.message} (${error.code})`
    }
  }
  return error instanceof Error ? error.message : String(error)
}

/** Builds an element with text content only (never HTML from data). */
export function el<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value)
  for (const child of children) node.append(child)
  return node
}

export function formatDate (value: string | null | undefined, never = 'never'): string {
  if (!value) return never
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const node = document.getElementById(id)
  if (!node) throw new Error(`#${id} missing from the page`)
  return node as T
}
