// What each root query or mutation field of an operation answered, by response key: the contract
// code of the error it threw, or the `code` of the object it returned (the public operations answer
// with one: ValidationResult, RecordUsageResult, HeartbeatResult, as the REST shim's bodies do).
// Recorded by wrapping the root fields' resolvers, so it holds whatever the caller selected and
// before the error formatter replaces the errors; the failed-lookup defence (rate-limit.ts) reads it.
import { defaultFieldResolver, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql'
import { toContractError } from '../../kernel/errors.ts'

const OUTCOMES = Symbol('root field outcomes')
const RECORDS = Symbol('records its outcome')

type Carrier = Record<symbol, Map<string, string> | undefined>

function record (context: unknown, key: string | number, code: unknown) {
  if (typeof code !== 'string' || typeof context !== 'object' || context === null) return
  const carrier = context as Carrier
  const outcomes = carrier[OUTCOMES] ?? new Map<string, string>()
  carrier[OUTCOMES] = outcomes
  outcomes.set(String(key), code)
}

const codeOf = (value: unknown) => (value as { code?: unknown } | null | undefined)?.code
const errorCode = (error: unknown) => toContractError(error).code

/**
 * Wraps every root query and mutation resolver of the schema once (a schema shared by several
 * apps in one process is wrapped once). Before the engine compiles any query: jit reads the
 * resolvers when it compiles.
 */
export function recordRootOutcomes (schema: GraphQLSchema): void {
  for (const type of [schema.getQueryType(), schema.getMutationType()]) {
    for (const field of Object.values(type?.getFields() ?? {})) {
      const resolve = field.resolve ?? defaultFieldResolver
      if ((resolve as unknown as Record<symbol, boolean>)[RECORDS]) continue
      const wrapped: GraphQLFieldResolver<unknown, unknown> = (source, args, context, info) => {
        const key = info.path.key
        let result: unknown
        try {
          result = resolve(source, args, context, info)
        } catch (error) {
          record(context, key, errorCode(error))
          throw error
        }
        if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
          return (result as PromiseLike<unknown>).then(
            (value: unknown) => { record(context, key, codeOf(value)); return value },
            (error: unknown) => { record(context, key, errorCode(error)); throw error }
          )
        }
        record(context, key, codeOf(result))
        return result
      }
      Object.defineProperty(wrapped, RECORDS, { value: true })
      field.resolve = wrapped
    }
  }
}

/** The code the root field answering `responseKey` gave in this operation, if it gave one. */
export function rootOutcome (context: unknown, responseKey: string): string | undefined {
  return (context as Carrier | null)?.[OUTCOMES]?.get(responseKey)
}
