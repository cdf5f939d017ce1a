// A MANAGER keeps its own client's record current (name, contact email) but cannot raise its own
// quota or touch another client's record (NOT_FOUND, never FORBIDDEN).
import t from 'tap'
import { build, createApiKey, createClient, gql, gqlOk } from '../helper.ts'

const UPDATE = 'mutation ($input: UpdateClientInput!) { updateClient(input: $input) { id name contactEmail quotaPerMinute status } }'

t.test('MANAGER may update its own client\'s name and contact email, not quota, not another client', async (t) => {
  const app = await build(t, { background: false })
  const own = await createClient(app, { quotaPerMinute: 50 })
  const other = await createClient(app)
  const manager = await createApiKey(app, 'MANAGER', own.id)
  const auditor = await createApiKey(app, 'AUDITOR')

  const updated = await gql(app, UPDATE, { input: { id: own.id, name: 'Renamed by manager', contactEmail: 'new@acme.test' } }, manager)
  t.equal(updated.errors, undefined, 'no error')
  t.match(updated.data?.updateClient, { id: own.id, name: 'Renamed by manager', contactEmail: 'new@acme.test', quotaPerMinute: 50, status: 'ACTIVE' })

  const quota = await gql(app, UPDATE, { input: { id: own.id, quotaPerMinute: 1_000_000 } }, manager)
  t.equal(quota.errors?.[0]?.extensions.code, 'FORBIDDEN', 'its own quota is the vendor\'s to set')
  const mixed = await gql(app, UPDATE, { input: { id: own.id, name: 'Sneaky', quotaPerMinute: null } }, manager)
  t.equal(mixed.errors?.[0]?.extensions.code, 'FORBIDDEN', 'a quota change is refused even beside allowed fields')

  const foreign = await gql(app, UPDATE, { input: { id: other.id, name: 'Taken over' } }, manager)
  t.equal(foreign.errors?.[0]?.extensions.code, 'NOT_FOUND', 'another client answers NOT_FOUND')
  const suspend = await gql(app, 'mutation ($input: SuspendClientInput!) { suspendClient(input: $input) { status } }', { input: { id: own.id } }, manager)
  t.equal(suspend.errors?.[0]?.extensions.code, 'FORBIDDEN', 'status stays the vendor\'s')
  const byAuditor = await gql(app, UPDATE, { input: { id: own.id, name: 'Audited' } }, auditor)
  t.equal(byAuditor.errors?.[0]?.extensions.code, 'FORBIDDEN', 'an AUDITOR changes nothing')

  const stored = await gqlOk<{ client: { name: string, quotaPerMinute: number, status: string } }>(app, 'query ($id: ID!) { client(id: $id) { name quotaPerMinute status } }', { id: own.id })
  t.same(stored.client, { name: 'Renamed by manager', quotaPerMinute: 50, status: 'ACTIVE' }, 'only the allowed change was stored')
  const otherStored = await gqlOk<{ client: { name: string } }>(app, 'query ($id: ID!) { client(id: $id) { name } }', { id: other.id })
  t.equal(otherStored.client.name, 'Test Client')
})
