import { readFileSync } from 'node:fs'
import { printSchema } from 'graphql'
import t from 'tap'
import { schema } from '../../src/main/schema.ts'

t.test('schema/schema.graphql matches the code (run npm run schema:print)', async (t) => {
  const committed = readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8')
  t.equal(committed, printSchema(schema) + '\n')
})
