// GraphQL over WebSocket on /graphql: the `graphql-transport-ws` protocol served by the reference
// implementation (graphql-ws `makeServer`), so every close code is the protocol's own:
// 4400 bad message, 4401 subscribe before ack, 4403 forbidden credential, 4408 no init in time,
// 4409 duplicate operation id, 4429 second connection_init. Queries and mutations run through the
// same pipeline as HTTP (app.graphql: limits, hooks, metrics, error format); subscriptions run
// graphql-js `subscribe` over a per-operation PubSub on the shared event bus. A socket closes with
// 4403 when its credential is revoked (on every instance) or expires, and with 1013 Try Again Later
// when its credential cannot be checked because the database is unavailable.
// Bounds: a frame over MAX_WS_PAYLOAD closes the socket with 1009 (ws refuses it from its header,
// before buffering or parsing); MAX_SUBSCRIPTIONS_PER_SOCKET live subscriptions per socket and
// SUBSCRIPTIONS_PER_CREDENTIAL per credential across sockets and instances (subscription-slots.ts),
// each place taken before any await, so a burst of frames cannot pass the check together.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { makeServer, handleProtocols, CloseCode, type Context } from 'graphql-ws'
import { GraphQLError, parse, subscribe, validate, specifiedRules, type DocumentNode, type ExecutionArgs, type ExecutionResult, type ValidationRule } from 'graphql'
import type { WebSocket } from 'ws'
import { bearerToken, type Actor } from '../../kernel/access.ts'
import { RateLimitError, ServiceUnavailableError, toContractError } from '../../kernel/errors.ts'
import { createLoaders, type GraphQLContext } from '../../graphql/context.ts'
import { checkDocumentText, PARSE_OPTIONS, selectOperation } from './document-limits.ts'
import { formatErrors, type FormatOptions } from './graphql-errors.ts'
import { createOperationPubSub, type OperationPubSub } from '../../graphql/pubsub.ts'
import { createSubscriptionSlots } from './subscription-slots.ts'

/** Largest setTimeout delay Node honours, in ms; longer expiries re-arm. */
const MAX_TIMER_MS = 2_147_483_647
/** Subscriptions one socket may hold open at once. */
export const MAX_SUBSCRIPTIONS_PER_SOCKET = 100
/** Largest frame a socket accepts, in bytes: the HTTP body limit (main/app.ts BODY_LIMIT). */
export const MAX_WS_PAYLOAD = 1024 * 1024
/** Keep-alive ping period, in ms; a socket that misses a pong for as long is terminated. */
const KEEP_ALIVE_MS = 12_000

interface Extra {
  socket: WebSocket
  request: FastifyRequest
  actor?: Actor
  expiry?: NodeJS.Timeout
  /** PubSub of each running subscription, by operation id. */
  operations: Map<string, OperationPubSub>
  /** Subscriptions holding a place on this socket (and the credential's), by operation id, from the first check on. */
  slots: Set<string>
  /** Tells this socket's operations apart from another socket's in the credential's count. */
  serial: number
  closed: boolean
}

export interface WsServerOptions {
  validationRules: ValidationRule[]
  format: FormatOptions
}

function forbidden (socket: WebSocket, reason: string) {
  if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(CloseCode.Forbidden, reason)
}

function bearerOf (params: Record<string, unknown> | undefined): string | undefined {
  const payload = params ?? {}
  const source = (typeof payload.headers === 'object' && payload.headers !== null ? payload.headers : payload) as Record<string, unknown>
  const headers = Object.fromEntries(Object.entries(source).map(([k, v]) => [k.toLowerCase(), typeof v === 'string' ? v : undefined]))
  return bearerToken(headers)
}

export function createWsHandler (app: FastifyInstance, options: WsServerOptions) {
  const { services, bus, config, cache } = app.deps
  const live = new Set<Extra>()
  const schema = app.graphqlSchema
  const rules = [...specifiedRules, ...options.validationRules]
  const perCredential = config.subscriptionsPerCredential
  const slots = createSubscriptionSlots(cache.redis, `${config.redis?.prefix ?? 'serials'}:subs:`, perCredential)
  let sockets = 0
  // An API key and every token issued from it share one count; the env ADMIN_API_KEY is one credential.
  const credentialOf = (extra: Extra) => extra.actor!.keyId ?? extra.actor!.id
  const slotId = (extra: Extra, id: string) => `${extra.serial}:${id}`
  function release (extra: Extra, id: string) {
    if (!extra.slots.delete(id)) return
    slots.release(credentialOf(extra), slotId(extra, id))
  }

  // Revocation reaches every instance through the bus; close that key's sockets here. Keys revoked
  // in the last minute are remembered, so a connection authenticated just before the revocation
  // arrived (its actor not yet set when the listener ran) is refused as well.
  const recentlyRevoked = new Map<string, number>()
  const stopListening = app.onCredentialRevoked((keyId) => {
    const now = Date.now()
    for (const [id, at] of recentlyRevoked) if (now - at > 60_000) recentlyRevoked.delete(id)
    recentlyRevoked.set(keyId, now)
    for (const extra of live) if (extra.actor?.keyId === keyId) forbidden(extra.socket, 'Forbidden: credential revoked')
  })
  app.addHook('onClose', async () => {
    stopListening()
    for (const extra of live) extra.socket.close(1001, 'Server shutting down')
    slots.close()
  })

  function armExpiry (extra: Extra) {
    const expiresAt = extra.actor?.expiresAt
    if (expiresAt == null) return
    const wait = expiresAt - Date.now()
    if (wait <= 0) return forbidden(extra.socket, 'Forbidden: credential expired')
    extra.expiry = setTimeout(() => armExpiry(extra), Math.min(wait, MAX_TIMER_MS))
    extra.expiry.unref()
  }

  function contextFor (extra: Extra, pubsub?: OperationPubSub, operationName?: string | null): GraphQLContext & Record<string, unknown> {
    const actor = extra.actor!
    return {
      actor,
      meta: { ip: extra.request.ip ?? 'ws', requestId: extra.request.id },
      services,
      loaders: createLoaders(services, actor),
      issueToken: app.issueToken,
      request: extra.request,
      pubsub: pubsub ?? createOperationPubSub(bus.emitter),
      transport: 'ws',
      operationName: operationName ?? undefined
    }
  }

  const errorsOf = (thrown: readonly unknown[]) => formatErrors(thrown, options.format).errors.map((e) => new GraphQLError(e.message, { extensions: e.extensions }))

  const server = makeServer<Record<string, unknown> | undefined, Extra>({
    schema,
    onConnect: async (ctx: Context<Record<string, unknown> | undefined, Extra>) => {
      const token = bearerOf(ctx.connectionParams)
      let actor: Actor | null = null
      try {
        actor = token ? await app.authenticate(token) : null
      } catch (error) {
        // Not a refused credential: closed below (4500, or 1013 Try Again Later when the database is unavailable).
        const code = toContractError(error).code
        if (code === 'INTERNAL' || code === 'SERVICE_UNAVAILABLE') throw error
      }
      // false → close 4403 Forbidden.
      if (!actor || (actor.expiresAt !== null && actor.expiresAt <= Date.now())) return false
      if (actor.keyId !== null && recentlyRevoked.has(actor.keyId)) return false
      ctx.extra.actor = actor
      armExpiry(ctx.extra)
      return true
    },
    onSubscribe: async (ctx, id, payload) => {
      const extra = ctx.extra
      let document: DocumentNode
      try {
        if (typeof payload.query !== 'string') throw new GraphQLError('query must be a string')
        checkDocumentText(payload.query)
        document = parse(payload.query, PARSE_OPTIONS)
      } catch (error) {
        return errorsOf([error])
      }
      const invalid = validate(schema, document, rules)
      if (invalid.length > 0) return errorsOf(invalid)
      const operation = selectOperation(document, payload.operationName)
      if (!operation) return errorsOf([new GraphQLError('Unable to identify the operation: send operationName')])
      const subscription = operation.operation === 'subscription'
      // The socket's place is taken here, before any await: a burst of frames sees every earlier one.
      if (subscription) {
        if (extra.slots.size >= MAX_SUBSCRIPTIONS_PER_SOCKET) return errorsOf([new RateLimitError(60, `At most ${MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions per connection`)])
        extra.slots.add(id)
      }
      try {
        // A client's quotaPerMinute counts each operation on the socket, as each HTTP request.
        const clientId = extra.actor?.clientId
        if (clientId && app.chargeClientQuota) await app.chargeClientQuota(clientId)
        if (subscription && !await slots.take(credentialOf(extra), slotId(extra, id))) {
          throw new RateLimitError(60, `At most ${perCredential} subscriptions per credential`)
        }
      } catch (error) {
        extra.slots.delete(id)
        return errorsOf([error])
      }
      // Closed meanwhile: onClose has run; nothing will complete this operation.
      if (extra.closed) {
        if (subscription) release(extra, id)
        return errorsOf([new GraphQLError('Connection closed')])
      }
      const variableValues = payload.variables ?? undefined
      if (!subscription) {
        // Runs through app.graphql in `execute` below: the source travels in the context.
        return { schema, document, operationName: payload.operationName, variableValues, contextValue: { ...contextFor(extra, undefined, payload.operationName), source: payload.query } }
      }
      const pubsub = createOperationPubSub(bus.emitter)
      extra.operations.set(id, pubsub)
      return { schema, document, operationName: payload.operationName, variableValues, contextValue: contextFor(extra, pubsub, payload.operationName) }
    },
    execute: async (args: ExecutionArgs) => {
      const context = args.contextValue as GraphQLContext & { source: string }
      try {
        return await app.graphql(context.source, context as never, (args.variableValues ?? undefined) as Record<string, unknown> | undefined, args.operationName ?? undefined) as ExecutionResult
      } catch (error) {
        return { errors: formatErrors([error], options.format).errors } as unknown as ExecutionResult
      }
    },
    subscribe: async (args: ExecutionArgs) => {
      const context = args.contextValue as GraphQLContext & { pubsub: OperationPubSub }
      const result = await subscribe(args)
      if (!(Symbol.asyncIterator in result)) { context.pubsub.close(); return result }
      const inner = result[Symbol.asyncIterator]()
      // Close the operation's streams first: an async generator waiting for its next event
      // would otherwise hold return() until that event arrives.
      const wrapped: AsyncGenerator<ExecutionResult> = {
        next: () => inner.next(),
        return: async (value) => { context.pubsub.close(); return await inner.return?.(value) ?? { value, done: true } },
        throw: async (error) => { context.pubsub.close(); return await inner.throw?.(error) ?? { value: undefined, done: true } },
        [Symbol.asyncIterator] () { return wrapped }
      }
      return wrapped
    },
    onNext: (_ctx, _id, _payload, _args, result) => {
      if (!result.errors?.length) return
      return { ...result, errors: formatErrors(result.errors, options.format).errors }
    },
    onError: (_ctx, _id, _payload, errors) => formatErrors(errors, options.format).errors,
    onComplete: (ctx, id) => {
      ctx.extra.operations.get(id)?.close()
      ctx.extra.operations.delete(id)
      release(ctx.extra, id)
    },
    onClose: (ctx) => {
      const extra = ctx.extra
      extra.closed = true
      live.delete(extra)
      if (extra.expiry) clearTimeout(extra.expiry)
      for (const pubsub of extra.operations.values()) pubsub.close()
      extra.operations.clear()
      for (const id of [...extra.slots]) release(extra, id)
    }
  })

  // Adapter between @fastify/websocket and makeServer (as graphql-ws/use/@fastify/websocket,
  // logging through the app's logger).
  return function handle (socket: WebSocket, request: FastifyRequest) {
    const extra: Extra = { socket, request, operations: new Map(), slots: new Set(), serial: ++sockets, closed: false }
    live.add(extra)
    socket.once('error', (error: Error & { code?: string }) => {
      // A frame over MAX_WS_PAYLOAD: ws has closed the socket with 1009 already, before reading the
      // frame; the client's fault, not the server's.
      if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') { request.log.info({ code: error.code }, 'websocket frame too large'); return }
      request.log.warn({ err: error }, 'websocket error')
      socket.close(CloseCode.InternalServerError, 'Internal server error')
    })
    let pongWait: NodeJS.Timeout | null = null
    const ping = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return
      pongWait = setTimeout(() => socket.terminate(), KEEP_ALIVE_MS)
      socket.once('pong', () => { if (pongWait) { clearTimeout(pongWait); pongWait = null } })
      socket.ping()
    }, KEEP_ALIVE_MS)
    ping.unref()
    const closed = server.opened({
      protocol: socket.protocol,
      send: (data) => new Promise((resolve, reject) => {
        if (socket.readyState !== socket.OPEN) return resolve()
        socket.send(data, (error) => error ? reject(error) : resolve())
      }),
      close: (code, reason) => socket.close(code, reason),
      onMessage: (cb) => socket.on('message', async (data) => {
        try {
          await cb(String(data))
        } catch (error) {
          const contract = toContractError(error)
          if (contract instanceof ServiceUnavailableError) {
            // 1013 Try Again Later (RFC 6455 registry): the socket's Retry-After.
            request.log.warn({ code: contract.code }, 'websocket message failed: a backend is unavailable')
            socket.close(1013, `SERVICE_UNAVAILABLE: retry after ${contract.retryAfterSeconds} s`)
            return
          }
          request.log.error({ err: error }, 'websocket message failed')
          socket.close(CloseCode.InternalServerError, 'Internal server error')
        }
      })
    }, extra)
    socket.once('close', (code, reason) => {
      if (pongWait) clearTimeout(pongWait)
      clearInterval(ping)
      live.delete(extra)
      void closed(code, String(reason))
    })
  }
}

/** ws's subprotocol selection: graphql-transport-ws when offered. */
export { handleProtocols }
