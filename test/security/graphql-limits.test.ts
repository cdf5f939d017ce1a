import t from 'tap'
import { build, createClient, gql } from '../helper.ts'

t.test('depth limit 10', async (t) => {
  const app = await build(t, { background: false })
  // serial → client is the only cycle-free nesting, so build depth with fragments of __typename-free fields.
  const deep = '{ serials(first: 1) { edges { node { devices(first: 1) { edges { node { id } } } client { id } } } } }'
  t.equal((await gql(app, deep)).errors, undefined, 'a real query passes')
  const tooDeep = '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }'
  const res = await gql(app, tooDeep)
  t.equal(res.status, 400)
  t.match(JSON.stringify(res.errors), /depth/)
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

t.test('request body at most 1 MiB', async (t) => {
  const app = await build(t, { background: false })
  const res = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(1024 * 1024) } }) })
  t.equal(res.statusCode, 413)
  t.equal(res.json().errors[0].extensions.code, 'VALIDATION_ERROR')
  const rest = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ serialNumber: 'x', deviceId: 'x'.repeat(1024 * 1024) }) })
  t.equal(rest.statusCode, 413)
  t.equal(rest.json().code, 'VALIDATION_ERROR')
})

t.test('introspection and GraphiQL off in production unless enabled', async (t) => {
  const prodEnv = { NODE_ENV: 'production', JWT_SECRET: 'j'.repeat(40), ENCRYPTION_KEY: 'a'.repeat(64), ENCRYPTION_PEPPER: 'p'.repeat(40) }
  const { loadDevSecrets } = await import('../../src/platform/dev-secrets.ts')
  const { TEST_DATA_DIR } = await import('../helper.ts')
  const dev = await loadDevSecrets(TEST_DATA_DIR, 'RSA-PSS-4096', true)
  const signing = { SERIAL_PRIVATE_KEY: dev.signing!.privateKeyPem, SERIAL_PUBLIC_KEY: dev.signing!.publicKeyPem }
  const prod = await build(t, { background: false, env: { ...prodEnv, ...signing } })
  const intro = await gql(prod, '{ __schema { queryType { name } } }')
  t.ok(intro.errors?.length, 'introspection refused')
  t.equal((await prod.inject({ method: 'GET', url: '/graphiql' })).statusCode, 404, 'no GraphiQL')

  const enabled = await build(t, { background: false, env: { ...prodEnv, ...signing, INTROSPECTION: 'true', GRAPHIQL: 'true' } })
  t.equal((await gql(enabled, '{ __schema { queryType { name } } }')).errors, undefined, 'introspection when enabled')

  const dev2 = await build(t, { background: false })
  await createClient(dev2)
  t.equal((await gql(dev2, '{ __schema { queryType { name } } }')).errors, undefined, 'on outside production')
})
