// Mercurius over the Pothos schema: per-request context, one error formatter, subscriptions on
// the shared event bus, and GraphQL validation also for subscriptions.
import fp from 'fastify-plugin'
import mercurius from 'mercurius'
import { GraphQLError, Kind, NoSchemaIntrospectionCustomRule, specifiedRules, validate, type ExecutionResult } from 'graphql'
import { ANONYMOUS, bearerToken, type Actor } from '../platform/auth.ts'
import { toContractError, type SerialModuleError } from '../platform/errors.ts'
import { createLoaders, type GraphQLContext } from './context.ts'
import { schema } from './schema.ts'

const { ErrorWithProps } = mercurius
export const QUERY_DEPTH = 10

declare module 'fastify' {
  interface FastifyInstance { graphqlSchema: typeof schema }
}

export default fp(async (app) => {
  const { config, services, bus } = app.deps
  const validationRules = config.introspection ? [] : [NoSchemaIntrospectionCustomRule]

  app.decorate('graphqlSchema', schema)

  await app.register(mercurius, {
    schema,
    path: '/graphql',
    graphiql: config.graphiql,
    jit: 1,
    queryDepth: QUERY_DEPTH,
    validationRules,
    context: (request, reply) => ({
      actor: request.actor,
      meta: { ip: request.ip, requestId: request.id },
      services,
      loaders: createLoaders(services, request.actor),
      issueToken: app.issueToken,
      request,
      reply
    }),
    subscription: {
      emitter: bus.emitter,
      // Authentication happens in connection_init ({ authorization: "Bearer …" }); without a
      // valid credential the connection is refused and closed.
      onConnect: async (data: { payload?: Record<string, unknown> }) => {
        const payload = data.payload ?? {}
        const headers = Object.fromEntries(Object.entries((payload.headers as Record<string, unknown>) ?? payload)
          .map(([k, v]) => [k.toLowerCase(), typeof v === 'string' ? v : undefined]))
        const token = bearerToken(headers)
        const actor: Actor | null = token ? await app.authenticate(token) : null
        if (!actor) return false
        return { actor, meta: { ip: 'ws', requestId: 'ws' }, services, loaders: createLoaders(services, actor), issueToken: app.issueToken }
      },
      context: () => ({ actor: ANONYMOUS, services })
    },
    errorFormatter: (execution: ExecutionResult & { errors: readonly GraphQLError[], statusCode?: number }, ctx: unknown) => {
      const context = ctx as Partial<GraphQLContext> & { app?: typeof app }
      let status = 200
      const errors = execution.errors.flatMap((error) => {
        const original = error.originalError as (Error & { errors?: GraphQLError[] }) | undefined
        // Mercurius wraps GraphQL validation failures: one error holding a list of them.
        if (original && !('toBody' in original) && Array.isArray(original.errors)) return original.errors.map((e) => ({ error: e, contract: toContractError(e) }))
        return [{ error, contract: original ? toContractError(original) : toContractError(error) }]
      }).map(({ error, contract }: { error: GraphQLError, contract: SerialModuleError }) => {
        if (contract.code === 'INTERNAL') {
          (context.reply?.log ?? app.log).error({ err: error.originalError ?? error, path: error.path }, 'GraphQL resolver failed')
        }
        if (!execution.data) status = Math.max(status, contract.statusCode)
        return {
          message: contract.code === 'INTERNAL' ? 'Internal server error' : contract.message,
          ...(error.locations ? { locations: error.locations } : {}),
          ...(error.path ? { path: error.path } : {}),
          extensions: { ...contract.toBody() }
        }
      })
      if (execution.data) status = 200
      else if (execution.statusCode) status = execution.statusCode
      return { statusCode: status, response: { data: execution.data ?? null, errors } }
    }
  })

  // graphql_operation_duration_seconds: timed from execution start to resolution.
  const timing = Symbol('graphql timing')
  app.graphql.addHook('preExecution', async (_schema, document, context) => {
    const operation = document.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION)
    ;(context as unknown as Record<symbol, unknown>)[timing] = {
      start: process.hrtime.bigint(),
      labels: { operation_type: operation?.operation ?? 'unknown', operation_name: operation?.name?.value ?? 'anonymous' }
    }
  })
  app.graphql.addHook('onResolution', async (_execution, context) => {
    const timed = (context as unknown as Record<symbol, { start: bigint, labels: { operation_type: string, operation_name: string } } | undefined>)[timing]
    if (timed) app.deps.metrics.graphqlDuration.observe(timed.labels, Number(process.hrtime.bigint() - timed.start) / 1e9)
  })

  // Mercurius runs only queryDepth on subscriptions: run full validation (and the introspection
  // rule) before a subscription starts, so a bad one fails at once instead of on every event.
  app.graphql.addHook('preSubscriptionExecution', async (_schema, document) => {
    const errors = validate(schema, document, [...specifiedRules, ...validationRules])
    if (errors.length > 0) throw new ErrorWithProps(errors[0]!.message, { code: 'VALIDATION_ERROR', statusCode: 400 }, 400)
  })
}, { name: 'graphql', dependencies: ['deps', 'auth'] })
