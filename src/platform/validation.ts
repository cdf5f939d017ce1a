// zod at the service boundary: one parse for REST and GraphQL alike, failures in the contract format.
import type { z } from 'zod'
import { ValidationError, fieldErrors } from './errors.ts'

export function parseInput<S extends z.ZodType> (schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input)
  if (!result.success) throw new ValidationError('Validation failed', fieldErrors(result.error.issues))
  return result.data
}
