// Every GraphQL operation the README shows is named (GraphQL Code Generator's client preset skips
// anonymous ones), a name stands for one document, and each document is valid against the
// committed schema without deprecated fields (issue #28).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildSchema, Kind, NoDeprecatedCustomRule, parse, specifiedRules, validate, type DocumentNode } from 'graphql'
import t from 'tap'
import { codeBlocks, readme, root } from './readme.ts'

const text = readme()
const schema = buildSchema(readFileSync(join(root, 'schema/schema.graphql'), 'utf8'))

/** Single-quoted shell strings that parse as GraphQL documents with an operation. */
function documents (): Array<{ source: string, document: DocumentNode }> {
  const found: Array<{ source: string, document: DocumentNode }> = []
  for (const block of codeBlocks(text, 'sh')) {
    for (const [, source] of block.matchAll(/'([^']*)'/g)) {
      let document: DocumentNode
      try { document = parse(source!) } catch { continue }
      if (document.definitions.some((d) => d.kind === Kind.OPERATION_DEFINITION)) found.push({ source: source!, document })
    }
  }
  return found
}

t.test('every operation in the README is named, valid and uses no deprecated field', async (t) => {
  const docs = documents()
  t.ok(docs.length >= 8, `the README's operations were found (${docs.length})`)
  const byName = new Map<string, string>()
  for (const { source, document } of docs) {
    for (const definition of document.definitions) {
      if (definition.kind !== Kind.OPERATION_DEFINITION) continue
      const name = definition.name?.value
      t.ok(name, `named: ${source}`)
      if (!name) continue
      const seen = byName.get(name)
      t.ok(seen === undefined || seen === source, `${name} names one document (or the same text again)`)
      byName.set(name, source)
    }
    t.same(validate(schema, document, [...specifiedRules, NoDeprecatedCustomRule]).map((e) => e.message), [], source)
  }
})

t.test('no anonymous operation anywhere in the README text, code or prose', async (t) => {
  // `query (` / `mutation {` / a bare `{ field … }` selection handed to gql: all anonymous.
  const anonymous = [...text.matchAll(/\b(query|mutation|subscription)\s*[({]|\bgql\s+['"]\s*\{/g)].map((m) => {
    const line = text.slice(0, m.index).split('\n').length
    return `README.md:${line}: ${m[0]}`
  })
  t.same(anonymous, [])
})
