// GraphQL over HTTP on /graphql, following the GraphQL-over-HTTP draft:
// - `application/graphql-response+json` when the client accepts it (and prefers it), else
//   `application/json`.
// - With `application/json`, every well-formed GraphQL response is HTTP 200 (parse, validation and
//   execution errors, NOT_FOUND, AUTHENTICATION_ERROR, RATE_LIMITED with Retry-After included), so
//   clients such as Apollo Client read `errors[].extensions.code`. With
//   `application/graphql-response+json`, a request that did not execute answers its error's status
//   (400, 401, 429, …) without `data`; an executed one answers 200.
// - Except SERVICE_UNAVAILABLE (the database does not answer): an operation that failed for that
//   reason alone (every error SERVICE_UNAVAILABLE, no root field answered) is 503 with Retry-After
//   with either media type, so that balancers and clients retry it.
// - An HTTP request that is not a GraphQL request (bad JSON, no `query`, wrong parameter types)
//   answers 400; a mutation or subscription over GET answers 405; a subscription over POST
//   answers 400 (subscriptions use the WebSocket on the same path).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { RateLimitError, ContractError, ServiceUnavailableError, ValidationError, toContractError, UNAVAILABLE_RETRY_AFTER_S } from '../../kernel/errors.ts'
import { createLoaders, type GraphQLContext } from '../../graphql/context.ts'
import { checkDocumentText } from './document-limits.ts'
import { formatErrors, type FormatOptions, type FormattedError } from './graphql-errors.ts'
import type { WebSocket } from 'ws'

export const GRAPHQL_RESPONSE = 'application/graphql-response+json'
const JSON_MEDIA = 'application/json'

type Media = typeof GRAPHQL_RESPONSE | typeof JSON_MEDIA

/** Errors about the HTTP request itself: their status holds whatever the accepted media type. */
const TRANSPORT = Symbol('graphql transport error')

export function transportError (status: number, message: string): ValidationError {
  const error = new ValidationError(message)
  Object.defineProperty(error, 'statusCode', { value: status })
  Object.defineProperty(error, TRANSPORT, { value: true })
  return error
}

/** The response media type for an Accept header: the supported one with the highest q. */
export function negotiate (accept: string | undefined): Media {
  if (!accept) return JSON_MEDIA
  let best: { media: Media, q: number } | undefined
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';')
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const q = qParam ? Number(qParam.slice(2)) : 1
    if (!(q > 0)) continue
    const media: Media | undefined = type === GRAPHQL_RESPONSE ? GRAPHQL_RESPONSE : type === JSON_MEDIA || type === 'application/*' || type === '*/*' ? JSON_MEDIA : undefined
    if (media && (!best || q > best.q)) best = { media, q }
  }
  return best?.media ?? JSON_MEDIA
}

interface Params { query: string, operationName?: string, variables?: Record<string, unknown>, extensions?: Record<string, unknown> }

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function jsonParam (value: unknown, name: string): unknown {
  if (typeof value !== 'string') return value
  try {
    return JSON.parse(value)
  } catch {
    throw transportError(400, `${name} is not valid JSON`)
  }
}

/** The GraphQL request parameters, or a 400 naming the bad one. */
function readParams (request: FastifyRequest): Params {
  const get = request.method === 'GET' || request.method === 'HEAD'
  const raw = get ? request.query : request.body
  if (!isMap(raw)) throw transportError(400, 'Request body must be a JSON object with a query')
  const query = raw.query
  if (typeof query !== 'string' || query.length === 0) throw transportError(400, 'query must be a non-empty string')
  const operationName = raw.operationName
  if (operationName != null && typeof operationName !== 'string') throw transportError(400, 'operationName must be a string')
  const variables = get ? jsonParam(raw.variables, 'variables') : raw.variables
  if (variables != null && !isMap(variables)) throw transportError(400, 'variables must be a map')
  const extensions = get ? jsonParam(raw.extensions, 'extensions') : raw.extensions
  if (extensions != null && !isMap(extensions)) throw transportError(400, 'extensions must be a map')
  return { query, operationName: operationName ?? undefined, variables: variables ?? undefined, extensions: extensions ?? undefined }
}

function send (reply: FastifyReply, media: Media, status: number, body: { data?: unknown, errors?: FormattedError[] }) {
  return reply.status(status).type(`${media}; charset=utf-8`).send(JSON.stringify(body))
}

/** Status and headers of a response that did not execute. */
function failed (reply: FastifyReply, media: Media, errors: FormattedError[], contracts: ContractError[]) {
  const limited = contracts.find((c): c is RateLimitError | ServiceUnavailableError => c instanceof RateLimitError || c instanceof ServiceUnavailableError)
  if (limited) void reply.header('retry-after', String(limited.retryAfterSeconds))
  const transport = contracts.find((c) => (c as unknown as Record<symbol, unknown>)[TRANSPORT])
  if (transport?.statusCode === 405) void reply.header('allow', 'POST')
  // A database that does not answer is 503 whatever the media type: balancers and clients retry it.
  const unavailable = contracts.length > 0 && contracts.every((c) => c.code === 'SERVICE_UNAVAILABLE')
  const status = transport
    ? transport.statusCode
    : unavailable ? 503 : media === JSON_MEDIA ? 200 : Math.max(400, ...contracts.map((c) => c.statusCode))
  return send(reply, media, status, { errors })
}

/**
 * True when an executed operation produced nothing but SERVICE_UNAVAILABLE errors: every root
 * field null (or no data). Such an answer is 503 with Retry-After; a partial one stays 200.
 */
function wholeOperationUnavailable (result: { data?: unknown, errors?: readonly FormattedError[] }): boolean {
  if (!result.errors?.length || !result.errors.every((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) return false
  const data = result.data as Record<string, unknown> | null | undefined
  return data == null || Object.values(data).every((v) => v === null)
}

export interface HttpTransportOptions {
  format: FormatOptions
  wsHandler: (socket: WebSocket, request: FastifyRequest) => void
}

export function registerHttpTransport (app: FastifyInstance, options: HttpTransportOptions) {
  const { services } = app.deps

  async function handler (request: FastifyRequest, reply: FastifyReply) {
    const media = negotiate(request.headers.accept)
    try {
      const params = readParams(request)
      checkDocumentText(params.query)
      const context: Partial<GraphQLContext> & Record<string, unknown> = {
        actor: request.actor,
        meta: { ip: request.ip, requestId: request.id },
        services,
        loaders: createLoaders(services, request.actor),
        issueToken: app.issueToken,
        request,
        transport: 'http',
        method: request.method,
        operationName: params.operationName
      }
      const result = await app.graphql(params.query, context as never, params.variables, params.operationName)
      // Not executed (e.g. an unknown operationName): a request error.
      if (result.data === undefined && result.errors?.length) {
        const { errors, contracts } = formatErrors(result.errors, options.format)
        return failed(reply, media, errors, contracts)
      }
      if (wholeOperationUnavailable(result as { data?: unknown, errors?: FormattedError[] })) {
        void reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER_S))
        return send(reply, media, 503, result as { data?: unknown, errors?: FormattedError[] })
      }
      return send(reply, media, 200, result as { data?: unknown, errors?: FormattedError[] })
    } catch (error) {
      const { errors, contracts } = formatErrors([error], options.format)
      return failed(reply, media, errors, contracts)
    }
  }

  // Errors raised before the handler, in the same GraphQL shape. Credential and rate-limit
  // refusals are GraphQL responses (200 with application/json, Retry-After kept); a body that
  // cannot be read as a GraphQL request (not JSON, too large, too deep) keeps its HTTP status.
  function errorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const media = negotiate(request.headers.accept)
    const contract = toContractError(error)
    if (contract.code === 'INTERNAL') request.log.error({ err: error }, 'request failed')
    else request.log.info({ code: contract.code, msg: contract.message }, 'request rejected')
    const graphqlAnswer = ['AUTHENTICATION_ERROR', 'FORBIDDEN', 'RATE_LIMITED', 'FEATURE_DISABLED'].includes(contract.code)
    const status = error.statusCode === 413 || error.statusCode === 415 ? error.statusCode : contract.statusCode
    if (!graphqlAnswer) Object.defineProperty(contract, TRANSPORT, { value: true })
    if (!graphqlAnswer && status !== contract.statusCode) Object.defineProperty(contract, 'statusCode', { value: status })
    const { errors } = formatErrors([contract], options.format)
    return failed(reply, media, errors, [contract])
  }

  // The WebSocket shares the path: an upgrade goes to wsHandler, a plain GET to the handler.
  app.route({ method: 'GET', url: '/graphql', handler, errorHandler, wsHandler: options.wsHandler })
  app.route({ method: 'POST', url: '/graphql', handler, errorHandler })
  app.route({
    method: ['PUT', 'PATCH', 'DELETE'],
    url: '/graphql',
    errorHandler,
    handler: async (request, reply) => {
      const error = transportError(405, 'Use POST, or GET for queries')
      return failed(reply, negotiate(request.headers.accept), formatErrors([error], options.format).errors, [error])
    }
  })
}
