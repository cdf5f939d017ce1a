// The one Pothos builder. Each feature adds its types in its own *-graphql.ts file.
import SchemaBuilder from '@pothos/core'
import ScopeAuthPlugin from '@pothos/plugin-scope-auth'
import ComplexityPlugin from '@pothos/plugin-complexity'
import RelayPlugin from '@pothos/plugin-relay'
import TracingPlugin, { isRootField } from '@pothos/plugin-tracing'
import { createOpenTelemetryWrapper } from '@pothos/tracing-opentelemetry'
import { GraphQLError, GraphQLScalarType, Kind } from 'graphql'
import { hasRole, WRITERS } from '../kernel/access.ts'
import { AuthenticationError, AuthorizationError, ValidationError } from '../kernel/errors.ts'
import type { GraphQLContext } from './context.ts'
import { tracer, tracingEnabled } from '../infra/tracing.ts'

const DateTime = new GraphQLScalarType<Date | null, string>({
  name: 'DateTime',
  description: 'ISO-8601 date and time in UTC, e.g. 2026-11-30T18:00:00.000Z',
  serialize: (value) => {
    const date = value instanceof Date ? value : new Date(value as string)
    if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime cannot represent an invalid date')
    return date.toISOString()
  },
  parseValue: (value) => {
    const date = typeof value === 'string' ? new Date(value) : null
    if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO-8601 string')
    return date
  },
  parseLiteral: (ast) => {
    const date = ast.kind === Kind.STRING ? new Date(ast.value) : null
    if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO-8601 string')
    return date
  }
})

const JSONScalar = new GraphQLScalarType<unknown, unknown>({
  name: 'JSON',
  description: 'Any JSON value (objects as literals or, better, as variables)',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: function parse (ast): unknown {
    switch (ast.kind) {
      case Kind.STRING: case Kind.BOOLEAN: return ast.value
      case Kind.INT: case Kind.FLOAT: return Number(ast.value)
      case Kind.OBJECT: return Object.fromEntries(ast.fields.map((f) => [f.name.value, parse(f.value)]))
      case Kind.LIST: return ast.values.map((v) => parse(v))
      case Kind.NULL: return null
      default: throw new GraphQLError('JSON literal not supported (use a variable)')
    }
  }
})

/**
 * Sequence numbers (usage events, audit log) are PostgreSQL bigserials. They go out as JSON numbers,
 * the same as in REST, and are exact while below 2^53: at a million events a second that lasts
 * 285 years, and a larger value is refused loudly rather than rounded.
 */
const SeqScalar = new GraphQLScalarType<number, number>({
  name: 'Seq',
  description: 'Position in an append-only sequence (usage events, audit log): a non-negative integer sent as a JSON number, ' +
    'exact up to 2^53 − 1 (9,007,199,254,740,991), the same value and type as `seq` in REST answers. ' +
    'As input, a JSON number or a string of decimal digits is accepted.',
  serialize: (value) => {
    const n = typeof value === 'string' ? Number(value) : value
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new GraphQLError('Seq cannot represent a value outside 0 … 2^53 − 1')
    return n
  },
  parseValue: (value) => parseSeq(value),
  parseLiteral: (ast) => parseSeq(ast.kind === Kind.INT || ast.kind === Kind.STRING ? (ast.kind === Kind.INT ? Number(ast.value) : ast.value) : undefined)
})

function parseSeq (value: unknown): number {
  const n = typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new GraphQLError('Seq must be an integer between 0 and 2^53 − 1')
  return n
}

export interface AuthScopes {
  /** Any valid API key or token. */
  authenticated: boolean
  /** ADMIN or MANAGER: may change data (MANAGER only its own client's). */
  writer: boolean
  admin: boolean
}

const createSpan = createOpenTelemetryWrapper(tracer, {
  includeSource: false,
  includeArgs: false, // arguments hold serial numbers
  onSpan: (span, _options, _parent, _args, _context, info) => span.updateName(`${info.parentType.name}.${info.fieldName}`)
})

interface BuilderTypes {
  Context: GraphQLContext
  AuthScopes: AuthScopes
  Scalars: {
    DateTime: { Input: Date, Output: Date | string }
    JSON: { Input: unknown, Output: unknown }
    Seq: { Input: number, Output: number | string }
    ID: { Input: string, Output: string }
  }
  DefaultFieldNullability: false
}

/** The builder's resolved schema types, for helpers that take a Pothos field builder. */
export type SchemaTypes = PothosSchemaTypes.ExtendDefaultTypes<BuilderTypes>
/** The `t` of an input type's `fields: (t) => …`, for field sets shared by several inputs. */
export type InputFieldBuilder = PothosSchemaTypes.InputFieldBuilder<SchemaTypes, 'InputObject'>

export const builder = new SchemaBuilder<BuilderTypes>({
  plugins: [ScopeAuthPlugin, ComplexityPlugin, RelayPlugin, TracingPlugin],
  defaultFieldNullability: false,
  // One span per root field when tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT).
  tracing: {
    default: (config) => isRootField(config),
    wrap: (resolver, options) => {
      const traced = createSpan(resolver, options)
      return (parent, args, context, info) => tracingEnabled() ? traced(parent, args, context, info) : resolver(parent, args, context, info)
    }
  },
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({
      authenticated: ctx.actor.role !== null,
      writer: hasRole(ctx.actor, WRITERS),
      admin: hasRole(ctx.actor, ['ADMIN'])
    }),
    unauthorizedError: (_parent, ctx) => ctx.actor.role === null ? new AuthenticationError() : new AuthorizationError()
  },
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: 10,
    // Depth is bounded once, for HTTP and WebSocket alike, by DepthLimitRule at validation
    // (src/http/graphql/document-limits.ts), before any resolver runs.
    limit: { complexity: 5000, breadth: 100 },
    // A query over the limits is the caller's fault: VALIDATION_ERROR (400), not INTERNAL.
    complexityError: (kind, result) => new ValidationError(String(kind) === 'Complexity'
      ? `Query complexity ${result.complexity} exceeds the limit of ${result.maxComplexity}`
      : `Query breadth ${result.breadth} exceeds the limit of ${result.maxBreadth}`)
  },
  // Node, node and nodes are ours (src/graphql/node.ts): ids stay the plain prefixed ids, no
  // base64 global ids. Connections are built by src/graphql/connection.ts (first/after only).
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    pageInfoTypeOptions: { description: 'Where a page sits in its list (Relay cursor connections)' },
    hasNextPageFieldOptions: { description: 'True when more items follow this page: ask again with after: endCursor' },
    hasPreviousPageFieldOptions: { description: 'Always false: lists page forward only (first/after)' },
    startCursorFieldOptions: { description: 'Cursor of the first item of the page; null on an empty page' },
    endCursorFieldOptions: { description: 'Cursor of the last item of the page; pass it as after to get the next page' },
    cursorFieldOptions: { description: 'Opaque position of this item; pass it as after to continue behind it' },
    nodeFieldOptions: { description: 'The item' },
    edgesFieldOptions: { description: 'The items of this page, each with its cursor' },
    pageInfoFieldOptions: { description: 'Whether more items follow, and the cursors to get them' }
  }
})

builder.addScalarType('DateTime', DateTime)
builder.addScalarType('JSON', JSONScalar)
builder.addScalarType('Seq', SeqScalar)
builder.queryType({ description: 'Reads. Most need an API key or token; publicKey is public' })
builder.mutationType({ description: 'Changes, each taking one input argument. validateSerial, recordUsage, releaseDevice and issueLicenseCertificate are public: the serial number is the credential' })
builder.subscriptionType({ description: 'Live events over WebSocket (graphql-transport-ws), authenticated in connection_init' })
