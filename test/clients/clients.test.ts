import { sql } from 'drizzle-orm'
import t from 'tap'
import { queryRows } from '../../src/infra/database.ts'
import { build, createClient, gql, gqlOk, uniqueClientNumber } from '../helper.ts'

const CREATE = 'mutation ($input: CreateClientInput!) { createClient(input: $input) { id clientNumber name contactEmail status quotaPerMinute } }'

t.test('client CRUD, suspension and listing', async (t) => {
  const app = await build(t)
  const number = uniqueClientNumber().toLowerCase()
  const created = (await gqlOk(app, CREATE, { input: { clientNumber: number, name: 'Acme', contactEmail: 'ops@acme.test', quotaPerMinute: 600 } })).createClient
  t.match(created, { id: /^cli_/, clientNumber: number.toUpperCase(), name: 'Acme', contactEmail: 'ops@acme.test', status: 'ACTIVE', quotaPerMinute: 600 })

  const [row] = await queryRows<{ contact_email_enc: string }>(app.deps.database.db, sql`select contact_email_enc from clients where id = ${created.id}`)
  t.notMatch(row?.contact_email_enc, /acme/, 'contact email encrypted at rest')

  const duplicate = await gql(app, CREATE, { input: { clientNumber: number, name: 'Other', contactEmail: 'x@y.test' } })
  t.match(duplicate.errors?.[0]?.extensions, { code: 'CONFLICT', statusCode: 409 })

  const updated = await gqlOk(app, 'mutation ($input: UpdateClientInput!) { updateClient(input: $input) { name contactEmail quotaPerMinute } }', { input: { id: created.id, name: 'Acme Corp', contactEmail: 'it@acme.test', quotaPerMinute: null } })
  t.same(updated.updateClient, { name: 'Acme Corp', contactEmail: 'it@acme.test', quotaPerMinute: null })

  const suspended = await gqlOk(app, 'mutation ($input: SuspendClientInput!) { suspendClient(input: $input) { status } }', { input: { id: created.id } })
  t.equal(suspended.suspendClient.status, 'SUSPENDED')
  const listed = await gqlOk(app, 'query { clients(first: 100, filter: { status: SUSPENDED, search: "acme corp" }) { edges { node { id } } pageInfo { hasNextPage } } }')
  t.ok(listed.clients.edges.some((e: { node: { id: string } }) => e.node.id === created.id))
  const reinstated = await gqlOk(app, 'mutation ($input: ReinstateClientInput!) { reinstateClient(input: $input) { status } }', { input: { id: created.id } })
  t.equal(reinstated.reinstateClient.status, 'ACTIVE')

  const one = await gqlOk(app, 'query ($id: ID!) { client(id: $id) { clientNumber } }', { id: created.id })
  t.equal(one.client.clientNumber, number.toUpperCase())
})

t.test('client input errors', async (t) => {
  const app = await build(t)
  for (const [input, field] of [
    [{ clientNumber: 'has space', name: 'x', contactEmail: 'a@b.test' }, 'clientNumber'],
    [{ clientNumber: 'X'.repeat(33), name: 'x', contactEmail: 'a@b.test' }, 'clientNumber'],
    [{ clientNumber: 'OK-1', name: '', contactEmail: 'a@b.test' }, 'name'],
    [{ clientNumber: 'OK-1', name: 'x', contactEmail: 'not-an-email' }, 'contactEmail'],
    [{ clientNumber: 'OK-1', name: 'x', contactEmail: 'a@b.test', quotaPerMinute: 0 }, 'quotaPerMinute']
  ] as const) {
    const res = await gql(app, CREATE, { input })
    t.match(res.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field }] }, field)
  }
  const missing = await gql(app, 'mutation ($input: SuspendClientInput!) { suspendClient(input: $input) { id } }', { input: { id: 'cli_00000000000000000000000000' } })
  t.match(missing.errors?.[0], { message: 'client cli_00000000000000000000000000 not found', extensions: { code: 'NOT_FOUND' } })
})

t.test('pagination: first/after walks every client once; at most 100 per page', async (t) => {
  const app = await build(t)
  const ids = new Set<string>()
  for (let i = 0; i < 5; i++) ids.add((await createClient(app)).id)
  const seen: string[] = []
  let after: string | null = null
  for (let page = 0; page < 1000; page++) {
    const res: any = await gqlOk(app, 'query ($after: String) { clients(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }', { after })
    seen.push(...res.clients.edges.map((e: { node: { id: string } }) => e.node.id))
    if (!res.clients.pageInfo.hasNextPage) break
    after = res.clients.pageInfo.endCursor
  }
  t.equal(new Set(seen).size, seen.length, 'no client twice')
  t.ok([...ids].every((id) => seen.includes(id)), 'every client seen')
  const tooMany = await gql(app, 'query { clients(first: 101) { edges { node { id } } } }')
  t.match(tooMany.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR' })
  const badCursor = await gql(app, 'query { clients(first: 1, after: "!!") { edges { node { id } } } }')
  t.match(badCursor.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR' })
})
