// Bounds on GraphQL documents, attacked the way an adversary would: depth through fragments,
// public budgets hidden in fragments, aliases multiplying bulk work, documents that overflow a
// recursive parser, and schema hints leaking while introspection is off.
import t from 'tap'
import { buildSchema, parse, specifiedRules, validate } from 'graphql'
import { DepthLimitRule, INTROSPECTION_DEPTH, MAX_DOCUMENT_WORK, QUERY_DEPTH } from '../../src/http/graphql/document-limits.ts'
import { ADMIN_KEY, build, createClient, gql } from '../helper.ts'
import { freshDatabase } from './fresh-database.ts'

const SN = 'AAAAA-AAAAA-AAAAA-AAAAA-AAAAA'
const validation = (alias: string) => `${alias}: validateSerial(input: { serialNumber: "${SN}", deviceId: "d" }) { code }`

t.test('depth is counted with fragments resolved; introspection has its own bound', async (t) => {
  const cyclic = buildSchema('type Query { a: A } type A { a: A, x: Int }')
  const nest = (n: number, inner: string) => Array.from({ length: n }).reduce<string>((acc) => `a { ${acc} }`, inner)
  const check = (source: string) => validate(cyclic, parse(source), [...specifiedRules, DepthLimitRule]).map((e) => e.message)
  t.same(check(`{ ${nest(QUERY_DEPTH - 1, 'x')} }`), [], `depth ${QUERY_DEPTH} passes`)
  t.match(check(`{ ${nest(QUERY_DEPTH, 'x')} }`), [/depth 11/], 'one more is refused')
  // The same depth hidden in a named fragment and in inline fragments.
  t.match(check(`{ ${nest(5, '...F')} } fragment F on A { ${nest(5, 'x')} }`), [/depth 11/], 'named fragment')
  t.match(check(`{ ${nest(5, `... on A { ${nest(5, 'x')} }`)} }`), [/depth 11/], 'inline fragment')
  t.match(check('{ ...F } fragment F on Query { a { ...F } }'), [/Cannot spread fragment "F" within itself/], 'a cycle is reported, not a stack overflow')

  const app = await build(t, { background: false })
  const ofType = (n: number) => Array.from({ length: n }).reduce<string>((acc) => `ofType { ${acc} }`, 'name')
  const fine = await gql(app, `{ __schema { types { fields { type { ${ofType(INTROSPECTION_DEPTH - 5)} } } } } }`)
  t.equal(fine.errors, undefined, 'introspection deeper than queries may go passes')
  const deep = await gql(app, `{ __schema { types { fields { type { ${ofType(INTROSPECTION_DEPTH)} } } } } }`)
  t.equal(deep.status, 200)
  t.equal(deep.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.match(deep.errors?.[0]?.message, /depth/)
})

t.test('complexity limit and at most 100 per page', async (t) => {
  const app = await build(t, { background: false })
  const page = await gql(app, '{ serials(first: 101) { edges { node { id } } } }')
  t.equal(page.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  const aliases = Array.from({ length: 60 }, (_, i) => `a${i}: serials(first: 100) { edges { node { id devices(first: 100) { edges { node { id } } } } } }`).join(' ')
  const heavy = await gql(app, `{ ${aliases} }`)
  t.ok(heavy.errors?.length, 'rejected')
  t.equal(heavy.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.match(heavy.errors?.[0]?.message, /complexity|breadth/i)
})

t.test('public budget counts fields after fragments are resolved', async (t) => {
  const app = await build(t, { background: false, env: { VALIDATE_RATE_LIMIT: '5' } })
  let ip = 0
  // Each case from its own address, so each starts with a full budget of 5.
  const post = (query: string, variables: Record<string, unknown> = {}) => app.inject({
    method: 'POST', url: '/graphql', remoteAddress: `10.9.0.${++ip}`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ query, variables })
  }).then((res) => res.json() as { data?: Record<string, unknown> | null, errors?: Array<{ extensions: { code: string } }> })
  const six = [1, 2, 3, 4, 5, 6].map((i) => validation(`v${i}`)).join(' ')

  const named = await post(`mutation { ...F } fragment F on Mutation { ${six} }`)
  t.equal(named.errors?.[0]?.extensions.code, 'RATE_LIMITED', 'named fragment')
  t.notOk(named.data, 'nothing ran')
  const inline = await post(`mutation { ... on Mutation { ${six} } }`)
  t.equal(inline.errors?.[0]?.extensions.code, 'RATE_LIMITED', 'inline fragment')
  const nested = await post(`mutation { v0: validateSerial(input: { serialNumber: "${SN}", deviceId: "d" }) { code } ...A } fragment A on Mutation { ... on Mutation { ...B } } fragment B on Mutation { ${[1, 2, 3, 4, 5].map((i) => validation(`w${i}`)).join(' ')} }`)
  t.equal(nested.errors?.[0]?.extensions.code, 'RATE_LIMITED', 'fragments within fragments')
  const five = await post(`mutation { ...F } fragment F on Mutation { ${[1, 2, 3, 4, 5].map((i) => validation(`v${i}`)).join(' ')} }`)
  t.equal(five.errors?.length ?? 0, 0, 'five fit the budget of five')
  const skipped = await post(`mutation ($no: Boolean!) { ... on Mutation @skip(if: $no) { ${six} } ${validation('one')} }`, { no: true })
  t.equal(skipped.errors?.length ?? 0, 0, 'skipped fields are not counted (they do not run)')
  t.same(Object.keys(skipped.data ?? {}), ['one'])
})

t.test('aliases cannot multiply bulk work past one document\'s bound', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const count = async () => (await gql(app, 'query ($c: ID!) { serials(first: 100, filter: { clientId: $c }) { edges { node { id } } } }', { c: client.id })).data?.serials.edges.length
  const bulk = (alias: string, n: number | string) => `${alias}: createSerials(input: { clientId: "${client.id}", count: ${n} }) { count }`

  const aliased = await gql(app, `mutation { ${bulk('a', 10000)} ${bulk('b', 10000)} ${bulk('c', 10000)} }`)
  t.equal(aliased.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.match(aliased.errors?.[0]?.message, new RegExp(`30000 units of work; the limit is ${MAX_DOCUMENT_WORK}`))
  t.equal(aliased.data ?? null, null, 'nothing ran')

  const viaVariables = await gql(app, 'mutation ($a: CreateSerialsInput!, $b: CreateSerialsInput!) { a: createSerials(input: $a) { count } ...F } fragment F on Mutation { b: createSerials(input: $b) { count } }', {
    a: { clientId: client.id, count: 6000 }, b: { clientId: client.id, count: 6000 }
  })
  t.equal(viaVariables.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', 'counts from variables and fragments too')
  t.equal(await count(), 0, 'no serial was created')

  const small = await gql(app, `mutation { ${bulk('a', 2)} ${bulk('b', 3)} }`)
  t.same(small.data, { a: { count: 2 }, b: { count: 3 } }, 'within the bound, aliases work')
  t.equal(await count(), 5)
})

t.test('documents that would overflow a recursive parser are refused with a 4xx, never a 500', async (t) => {
  const app = await build(t, { background: false })
  const post = (query: string) => app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` }, payload: JSON.stringify({ query }) })
  const cases: Record<string, string> = {
    'selections 5,000 deep': `{ ${'me { '.repeat(5000)}id${' }'.repeat(5000)} }`,
    'list literal 100,000 deep': `{ serials(filter: { clientId: ${'['.repeat(100_000)}"x"${']'.repeat(100_000)} }) { pageInfo { hasNextPage } } }`,
    'object literal 5,000 deep': `mutation { createSerial(input: { clientId: "x", metadata: ${'{ a: '.repeat(5000)}1${' }'.repeat(5000)} }) { serialNumber } }`,
    'parentheses and brackets mixed': `{ me${'(a: ['.repeat(3000)} }`,
    '20,000 tokens': `{ ${Array.from({ length: 20_000 }, (_, i) => `a${i}: __typename`).join(' ')} }`,
    'block string then nesting': `{ me(x: """ {{{{ """) ${'{ '.repeat(3000)} }`
  }
  for (const [name, query] of Object.entries(cases)) {
    const res = await post(query)
    t.ok(res.statusCode < 500, `${name}: ${res.statusCode}`)
    t.equal(res.json().errors?.[0]?.extensions.code, 'VALIDATION_ERROR', name)
  }
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200, 'still serving')
})

t.test('request body at most 1 MiB', async (t) => {
  const app = await build(t, { background: false })
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(1024 * 1024) } }) })
  t.equal(res.statusCode, 413)
  t.equal(res.json().errors[0].extensions.code, 'VALIDATION_ERROR')
  const rest = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ serialNumber: 'x', deviceId: 'x'.repeat(1024 * 1024) }) })
  t.equal(rest.statusCode, 413)
  t.equal(rest.json().code, 'VALIDATION_ERROR')
})

t.test('introspection and GraphiQL off in production unless enabled; no field suggestions then', async (t) => {
  // Secrets of its own, so a database of its own (the database keeps fingerprints of its secrets).
  const url = await freshDatabase(t)
  const prodEnv = { NODE_ENV: 'production', JWT_SECRET: 'j'.repeat(40), ENCRYPTION_KEY: 'a'.repeat(64), ENCRYPTION_PEPPER: 'p'.repeat(40), ...(url ? { DATABASE_URL: url } : {}) }
  const { loadDevSecrets } = await import('../../src/config/dev-secrets.ts')
  const { TEST_DATA_DIR } = await import('../helper.ts')
  const dev = await loadDevSecrets(TEST_DATA_DIR, 'RSA-PSS-4096', true)
  const signing = { SERIAL_PRIVATE_KEY: dev.signing!.privateKeyPem, SERIAL_PUBLIC_KEY: dev.signing!.publicKeyPem }
  const prod = await build(t, { background: false, env: { ...prodEnv, ...signing } })
  const intro = await gql(prod, '{ __schema { queryType { name } } }')
  t.ok(intro.errors?.length, 'introspection refused')
  t.equal((await prod.inject({ method: 'GET', url: '/graphiql' })).statusCode, 404, 'no GraphiQL')
  // Typos must not reveal field, argument, type or enum names.
  for (const query of ['{ clent(id: "x") { id } }', '{ client(idd: "x") { id } }', '{ serials(filter: { status: ACTIV }) { pageInfo { hasNextPage } } }', '{ me { ... on Clent { id } } }']) {
    const res = await gql(prod, query)
    t.ok(res.errors?.length, `refused: ${query}`)
    t.notMatch(JSON.stringify(res.errors), /Did you mean/, `no suggestion: ${query}`)
  }
  const viaVariable = await gql(prod, 'query ($s: SerialStatus) { serials(filter: { status: $s }) { pageInfo { hasNextPage } } }', { s: 'ACTIV' })
  t.notMatch(JSON.stringify(viaVariable.errors), /Did you mean/, 'no suggestion for a variable value')

  const enabled = await build(t, { background: false, env: { ...prodEnv, ...signing, INTROSPECTION: 'true', GRAPHIQL: 'true' } })
  t.equal((await gql(enabled, '{ __schema { queryType { name } } }')).errors, undefined, 'introspection when enabled')

  const dev2 = await build(t, { background: false })
  await createClient(dev2)
  t.equal((await gql(dev2, '{ __schema { queryType { name } } }')).errors, undefined, 'on outside production')
  t.match(JSON.stringify((await gql(dev2, '{ clent(id: "x") { id } }')).errors), /Did you mean/, 'suggestions while introspection is on')
})
