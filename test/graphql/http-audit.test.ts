// GraphQL over HTTP: graphql-http's conformance audit (every MUST and SHOULD), plus the status and
// media-type rules clients such as Apollo Client depend on.
import t from 'tap'
import { serverAudits } from 'graphql-http'
import { getIntrospectionQuery } from 'graphql'
import { ADMIN_KEY, build, createClient, createSerial, gql } from '../helper.ts'

const GRAPHQL_RESPONSE = 'application/graphql-response+json'

t.test('graphql-http serverAudits: every MUST and SHOULD passes', async (t) => {
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
  const audits = serverAudits({ url })
  t.ok(audits.length >= 40, `${audits.length} audits`)
  for (const audit of audits) {
    const result = await audit.fn()
    if (audit.name.startsWith('MAY')) continue
    t.equal(result.status, 'ok', `${audit.id} ${audit.name}${result.status === 'ok' ? '' : `: ${result.reason}`}`)
  }
})

t.test('application/json: every GraphQL response is 200 with errors[].extensions.code', async (t) => {
  const app = await build(t, { background: false, env: { VALIDATE_RATE_LIMIT: '2' } })
  const post = (payload: unknown, headers: Record<string, string> = {}) => app.inject({
    method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}`, ...headers }, payload: JSON.stringify(payload)
  })

  const notFound = await post({ query: '{ client(id: "cli_nope") { id } }' })
  t.equal(notFound.statusCode, 200, 'NOT_FOUND is 200')
  t.match(notFound.headers['content-type'], /^application\/json/)
  t.equal(notFound.json().errors[0].extensions.code, 'NOT_FOUND')

  const badToken = await post({ query: '{ me { id } }' }, { authorization: 'Bearer srl_not_a_key' })
  t.equal(badToken.statusCode, 200, 'AUTHENTICATION_ERROR is 200')
  t.equal(badToken.json().errors[0].extensions.code, 'AUTHENTICATION_ERROR')
  t.notOk('data' in badToken.json(), 'not executed: no data entry')

  const syntax = await post({ query: '{ me { id ' })
  t.equal(syntax.statusCode, 200)
  t.equal(syntax.json().errors[0].extensions.code, 'VALIDATION_ERROR')

  const validation = await post({ query: '{ nope }' })
  t.equal(validation.statusCode, 200)
  t.equal(validation.json().errors[0].extensions.code, 'VALIDATION_ERROR')

  // The public budget is 2 per minute: three validations in one document are refused.
  const validations = [1, 2, 3].map((i) => `v${i}: validateSerial(input: { serialNumber: "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA", deviceId: "d" }) { code }`).join(' ')
  const limited = await post({ query: `mutation { ${validations} }` }, { authorization: '' })
  t.equal(limited.statusCode, 200, 'RATE_LIMITED is 200')
  t.equal(limited.json().errors[0].extensions.code, 'RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) >= 1, 'Retry-After kept')

  const json = await post({ query: '{ __typename }', variables: null, extensions: null, operationName: null })
  t.equal(json.statusCode, 200)
  t.same(json.json(), { data: { __typename: 'Query' } })
})

t.test('application/graphql-response+json: request errors keep their status, executed ones are 200', async (t) => {
  const app = await build(t, { background: false })
  const post = (payload: unknown, token: string | null = ADMIN_KEY) => app.inject({
    method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json', accept: `${GRAPHQL_RESPONSE}, application/json;q=0.9`, ...(token ? { authorization: `Bearer ${token}` } : {}) }, payload: JSON.stringify(payload)
  })
  const ok = await post({ query: '{ __typename }' })
  t.equal(ok.statusCode, 200)
  t.match(ok.headers['content-type'], /^application\/graphql-response\+json/)

  const invalid = await post({ query: '{ nope }' })
  t.equal(invalid.statusCode, 400)
  t.notOk('data' in invalid.json())
  t.equal(invalid.json().errors[0].extensions.code, 'VALIDATION_ERROR')

  const badToken = await post({ query: '{ me { id } }' }, 'srl_not_a_key')
  t.equal(badToken.statusCode, 401)

  const notFound = await post({ query: '{ client(id: "cli_nope") { id } }' })
  t.equal(notFound.statusCode, 200, 'executed: 200 with the error')
  t.equal(notFound.json().errors[0].extensions.code, 'NOT_FOUND')
})

t.test('a mutation over GET is 405; a subscription over POST is 400; bad parameters are 400', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const get = (query: string) => app.inject({ method: 'GET', url: `/graphql?query=${encodeURIComponent(query)}`, headers: { authorization: `Bearer ${ADMIN_KEY}` } })

  const query = await get('{ __typename }')
  t.equal(query.statusCode, 200, 'queries over GET work')
  const mutation = await get(`mutation { suspendClient(input: { id: "${client.id}" }) { id status } }`)
  t.equal(mutation.statusCode, 405)
  t.equal(mutation.headers.allow, 'POST')
  t.equal(mutation.json().errors[0].extensions.code, 'VALIDATION_ERROR')
  const after = await gql(app, 'query ($id: ID!) { client(id: $id) { status } }', { id: client.id })
  t.equal(after.data?.client.status, 'ACTIVE', 'the GET mutation did not run')

  const sub = await gql(app, 'subscription { serialChanged { type } }')
  t.equal(sub.status, 400)
  t.equal(sub.errors?.[0]?.extensions.code, 'VALIDATION_ERROR')
  t.match(sub.errors?.[0]?.message, /WebSocket/)

  for (const payload of [{ qeury: '{ __typename }' }, { query: 1 }, { query: '{ __typename }', variables: [1] }, { query: '{ __typename }', operationName: 3 }]) {
    const res = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.json().errors[0].extensions.code, 'VALIDATION_ERROR')
  }
  const put = await app.inject({ method: 'PUT', url: '/graphql', headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.equal(put.statusCode, 405)
})

t.test('standard introspection works while introspection is on', async (t) => {
  const app = await build(t, { background: false })
  const res = await gql(app, getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true }))
  t.equal(res.status, 200)
  t.equal(res.errors, undefined)
  t.ok(res.data?.__schema.types.length > 20)
})

t.test('operation_name metric label is bounded: caller-chosen names do not make series', async (t) => {
  const app = await build(t, { background: false })
  const c = await createClient(app)
  await createSerial(app, c.id)
  for (const name of ['Random1x', 'Random2y', 'Random3z']) await gql(app, `query ${name} { me { id } }`)
  await gql(app, 'query Whatever { serials(first: 1) { edges { node { id } } } }')
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  const names = new Set([...metrics.body.matchAll(/graphql_operation_duration_seconds_count\{[^}]*operation_name="([^"]+)"/g)].map((m) => m[1]))
  t.notOk([...names].some((n) => /Random|Whatever/.test(n!)), 'no caller-chosen names')
  t.ok(names.has('me'), 'labelled by root field')
  t.ok(names.has('serials'))
})
