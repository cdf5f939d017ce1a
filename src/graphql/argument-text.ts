// Every GraphQL argument is checked for text PostgreSQL cannot store (NUL, unpaired surrogates)
// before its resolver runs, whichever transport brought it (HTTP, WebSocket, a subscription) and
// whether it came as a variable or a literal: an id or filter that reaches SQL without a service
// schema answers VALIDATION_ERROR like every other input, not INTERNAL.
import { defaultFieldResolver, isObjectType, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql'
import { ValidationError } from '../kernel/errors.ts'
import { unstorableTextFields } from '../kernel/input.ts'

const GUARDED = Symbol('argument text guarded')

/** Field names as the services report them: `name`, not `input.name`, for a mutation's one input. */
function refuseUnstorable (args: Record<string, unknown>): void {
  const keys = Object.keys(args)
  if (keys.length === 0) return
  const unstorable = unstorableTextFields(keys.length === 1 && keys[0] === 'input' ? args.input : args)
  if (unstorable.length > 0) throw new ValidationError('Validation failed', unstorable)
}

function guarded<TSource, TContext> (resolve: GraphQLFieldResolver<TSource, TContext>): GraphQLFieldResolver<TSource, TContext> {
  return (source, args, context, info) => {
    refuseUnstorable(args as Record<string, unknown>)
    return resolve(source, args, context, info)
  }
}

/** Wraps the resolver (and subscriber) of every field that takes arguments; returns the schema. */
export function guardArgumentText (schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue
    for (const field of Object.values(type.getFields())) {
      const marked = field as typeof field & { [GUARDED]?: true }
      if (field.args.length === 0 || marked[GUARDED]) continue
      field.resolve = guarded(field.resolve ?? defaultFieldResolver)
      if (field.subscribe) field.subscribe = guarded(field.subscribe)
      marked[GUARDED] = true
    }
  }
  return schema
}
