// Every type, field, argument, input field and enum value of the schema carries a description
// that starts with an upper-case letter (what graphql-schema-linter checks, run on the built schema
// so that types added later are held to it too).
import t from 'tap'
import { isEnumType, isInputObjectType, isInterfaceType, isObjectType, isSpecifiedScalarType, type GraphQLSchema } from 'graphql'
import { schema } from '../../src/main/schema.ts'

export function descriptionProblems (s: GraphQLSchema): string[] {
  const problems: string[] = []
  const check = (where: string, description: string | null | undefined): void => {
    if (!description || description.trim() === '') problems.push(`${where}: no description`)
    else if (!/^[A-Z]/.test(description.trim())) problems.push(`${where}: description starts lower-case: ${JSON.stringify(description.slice(0, 40))}`)
  }
  for (const type of Object.values(s.getTypeMap())) {
    if (type.name.startsWith('__') || isSpecifiedScalarType(type)) continue
    check(type.name, type.description)
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        check(`${type.name}.${field.name}`, field.description)
        for (const arg of field.args) check(`${type.name}.${field.name}(${arg.name})`, arg.description)
      }
    } else if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) check(`${type.name}.${field.name}`, field.description)
    } else if (isEnumType(type)) {
      for (const value of type.getValues()) check(`${type.name}.${value.name}`, value.description)
    }
  }
  return problems
}

t.test('every type, field, argument, input field and enum value has an upper-case description', async (t) => {
  const problems = descriptionProblems(schema)
  t.same(problems, [], `${problems.length} schema elements without a proper description`)
})

t.test('the check itself catches a missing and a lower-case description', async (t) => {
  const { buildSchema } = await import('graphql')
  const bad = buildSchema('"""Root""" type Query { "lower" a: Int, b(x: Int): Int }')
  t.same(descriptionProblems(bad), [
    'Query.a: description starts lower-case: "lower"',
    'Query.b: no description',
    'Query.b(x): no description'
  ])
})
