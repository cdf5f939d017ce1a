// Mercurius over the Pothos schema as the execution pipeline (parse and validation caches, jit,
// hooks, one error formatter); the transports are ours: GraphQL over HTTP (http-transport.ts) and
// graphql-transport-ws (ws-server.ts), both on /graphql.
import fp from 'fastify-plugin'
import mercurius from 'mercurius'
import { GraphQLError, NoSchemaIntrospectionCustomRule, getOperationAST, type ExecutionResult, type GraphQLSchema, type ValidationRule } from 'graphql'
import type { GraphQLContext } from '../../graphql/context.ts'
import {
  checkDocumentWork, DepthLimitRule, metricOperationName, PARSE_OPTIONS, QUERY_DEPTH, selectOperation, type Variables
} from './document-limits.ts'
import { formatErrors, type FormatOptions } from './graphql-errors.ts'
import { registerHttpTransport, transportError } from './http-transport.ts'
import { createWsHandler, handleProtocols, MAX_WS_PAYLOAD } from './ws-server.ts'
import { recordRootOutcomes } from './root-outcomes.ts'

export { QUERY_DEPTH }

declare module 'fastify' {
  interface FastifyInstance { graphqlSchema: GraphQLSchema }
}

/** Root fields of the schema: the values the operation_name metric label may take. */
const rootFields = (schema: GraphQLSchema): ReadonlySet<string> => new Set([schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]
  .flatMap((type) => type ? Object.keys(type.getFields()) : []))

/** The engine serves the schema it is given (main/schema.ts assembles the features'). */
export interface GraphqlPluginOptions { schema: GraphQLSchema }

export default fp<GraphqlPluginOptions>(async (app, { schema }) => {
  const roots = rootFields(schema)
  const { config } = app.deps
  const validationRules: ValidationRule[] = config.introspection ? [DepthLimitRule] : [DepthLimitRule, NoSchemaIntrospectionCustomRule]
  const format: FormatOptions = { log: app.log, hideSuggestions: !config.introspection }

  app.decorate('graphqlSchema', schema)
  // Before mercurius compiles anything: what each root field answered, for the rate limits.
  recordRootOutcomes(schema)

  await app.register(mercurius, {
    schema,
    path: '/graphql',
    graphiql: false, // served from the service's own assets: src/http/graphiql-routes.ts
    // Transports are registered below; mercurius is the execution pipeline only.
    routes: false,
    jit: 1,
    graphql: { parseOptions: PARSE_OPTIONS },
    validationRules,
    errorFormatter: (execution: ExecutionResult & { errors: readonly GraphQLError[] }, ctx: unknown) => {
      const context = ctx as Partial<GraphQLContext>
      const { errors } = formatErrors(execution.errors, { ...format, log: context.request?.log ?? app.log })
      return { statusCode: 200, response: { data: execution.data ?? null, errors } }
    }
  })

  type HookContext = { transport?: 'http' | 'ws', method?: string, operationName?: string }

  // Transport rules, then the work bound, before any rate limit counts the document.
  app.graphql.addHook('preExecution', async (_schema, document, ctx, variables) => {
    const context = ctx as unknown as HookContext
    const operation = getOperationAST(document, context.operationName)
    if (!operation) throw transportError(400, 'Unable to identify the operation: send operationName')
    if (context.transport === 'http' && operation.operation !== 'query' && (context.method === 'GET' || context.method === 'HEAD')) {
      throw transportError(405, `A ${operation.operation} cannot run over GET; use POST`)
    }
    if (context.transport === 'http' && operation.operation === 'subscription') {
      throw transportError(400, 'Subscriptions run over WebSocket (graphql-transport-ws) on /graphql')
    }
    checkDocumentWork(document, operation, variables as Variables)
  })

  // graphql_operation_duration_seconds: timed from execution start to resolution. The
  // operation_name label is bounded (see metricOperationName).
  const timing = Symbol('graphql timing')
  app.graphql.addHook('preExecution', async (_schema, document, context, variables) => {
    const operationName = (context as unknown as HookContext).operationName
    const operation = selectOperation(document, operationName)
    ;(context as unknown as Record<symbol, unknown>)[timing] = {
      start: process.hrtime.bigint(),
      labels: { operation_type: operation?.operation ?? 'unknown', operation_name: metricOperationName(document, operation, variables as Variables, roots) }
    }
  })
  app.graphql.addHook('onResolution', async (_execution, context) => {
    const timed = (context as unknown as Record<symbol, { start: bigint, labels: { operation_type: string, operation_name: string } } | undefined>)[timing]
    if (timed) app.deps.metrics.graphqlDuration.observe(timed.labels, Number(process.hrtime.bigint() - timed.start) / 1e9)
  })

  // graphql-transport-ws picks its subprotocol; anything else is refused by the protocol (4406).
  app.websocketServer.options.handleProtocols = handleProtocols
  // ws refuses a larger frame from its header (close 1009) before buffering it.
  app.websocketServer.options.maxPayload = MAX_WS_PAYLOAD
  registerHttpTransport(app, { format, wsHandler: createWsHandler(app, { validationRules, format }) })
}, { name: 'graphql', dependencies: ['deps', 'auth'] })
