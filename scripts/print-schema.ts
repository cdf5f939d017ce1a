// Writes the GraphQL SDL to schema/schema.graphql (committed; a test fails when it drifts).
import { writeFileSync } from 'node:fs'
import { printSchema } from 'graphql'
import { schema } from '../src/main/schema.ts'

export const SDL_PATH = new URL('../schema/schema.graphql', import.meta.url)
writeFileSync(SDL_PATH, printSchema(schema) + '\n')
process.stdout.write(`wrote ${SDL_PATH.pathname}\n`)
