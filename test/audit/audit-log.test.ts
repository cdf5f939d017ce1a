import t from 'tap'
import { sql } from 'drizzle-orm'
import { queryRows } from '../../src/infra/database.ts'
import { freshDatabase } from '../security/fresh-database.ts'
import { build, createApiKey, createClient, createSerial, gql, gqlOk } from '../helper.ts'

const LOG = `query ($f: AuditFilter, $first: Int, $after: String) {
  auditLog(first: $first, after: $after, filter: $f) {
    edges { cursor node { id actorId actorRole action targetType targetId clientId changes ip requestId createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}`

t.test('each mutation writes its audit entry with actor, role, target, ip and request id', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const res = await app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { authorization: `Bearer ${(await import('../helper.ts')).ADMIN_KEY}`, 'x-request-id': 'req-audit-1' },
    payload: { query: 'mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { id } }', variables: { i: { id: serial.id, reason: 'refund' } } }
  })
  t.equal(res.statusCode, 200)
  const { auditLog } = await gqlOk(app, LOG, { f: { targetId: serial.id }, first: 10 })
  const actions = auditLog.edges.map((e: any) => e.node.action)
  t.ok(actions.includes('serial.created'))
  const revoked = auditLog.edges.find((e: any) => e.node.action === 'serial.revoked').node
  t.match(revoked, { actorId: 'env:ADMIN_API_KEY', actorRole: 'ADMIN', targetType: 'serial', targetId: serial.id, clientId: client.id, requestId: 'req-audit-1', ip: '127.0.0.1' })
  t.ok(revoked.createdAt)

  // Every kind of change, then one entry per change.
  const key = await gqlOk(app, 'mutation ($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } } }', { i: { name: 'n', role: 'AUDITOR' } })
  await gqlOk(app, 'mutation ($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id } }', { i: { id: key.createApiKey.apiKey.id } })
  const s2 = await createSerial(app, client.id)
  await gqlOk(app, 'mutation ($i: ValidateSerialInput!) { validateSerial(input: $i) { code } }', { i: { serialNumber: s2.serialNumber, deviceId: 'd1' } })
  await gqlOk(app, 'mutation ($i: ReleaseDeviceInput!) { releaseDevice(input: $i) { id } }', { i: { serialNumber: s2.serialNumber, deviceId: 'd1' } })
  await gqlOk(app, 'mutation ($i: RevealSerialNumberInput!) { revealSerialNumber(input: $i) }', { i: { id: s2.id } })
  await gqlOk(app, 'mutation ($i: UpdateClientInput!) { updateClient(input: $i) { id } }', { i: { id: client.id, name: 'Renamed' } })
  await gqlOk(app, 'mutation ($i: SuspendClientInput!) { suspendClient(input: $i) { id } }', { i: { id: client.id } })
  const all = await queryRows<{ action: string }>(app.deps.database.db, sql`select action from audit_log where client_id = ${client.id} or target_id = ${key.createApiKey.apiKey.id}`)
  const seen = new Set(all.map((r) => r.action))
  for (const action of ['client.created', 'serial.created', 'serial.revoked', 'api_key.created', 'api_key.revoked', 'device.released', 'serial.revealed', 'client.updated', 'client.suspended']) {
    t.ok(seen.has(action), `${action} audited`)
  }
  t.notOk([...seen].some((a) => a.startsWith('serial.validat') || a.startsWith('usage.')), 'validation and usage are not audited')
})

t.test('the entry is in the same transaction: a failed change leaves no entry', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const before = await queryRows<{ n: number }>(app.deps.database.db, sql`select count(*)::int as n from audit_log where client_id = ${client.id}`)
  const res = await gql(app, 'mutation ($i: CreateClientInput!) { createClient(input: $i) { id } }', { i: { clientNumber: client.clientNumber, name: 'dup', contactEmail: 'a@example.com' } })
  t.equal(res.errors?.[0]?.extensions.code, 'CONFLICT')
  const after = await queryRows<{ n: number }>(app.deps.database.db, sql`select count(*)::int as n from audit_log where client_id = ${client.id}`)
  t.equal(after[0]!.n, before[0]!.n)
})

t.test('auditLog filters by actor, action, target and time; Relay pagination; MANAGER sees its client only', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const other = await createClient(app)
  const serials = []
  for (let i = 0; i < 3; i++) serials.push(await createSerial(app, client.id))
  const manager = await createApiKey(app, 'MANAGER', client.id)
  const managerId = (await gqlOk(app, '{ me { id } }', {}, manager)).me.id
  await gqlOk(app, 'mutation ($i: SuspendSerialInput!) { suspendSerial(input: $i) { id } }', { i: { id: serials[0]!.id } }, manager)

  const byActor = await gqlOk(app, LOG, { f: { actorId: managerId }, first: 10 })
  t.same(byActor.auditLog.edges.map((e: any) => e.node.action), ['serial.suspended'])

  const since = new Date(Date.now() - 60_000).toISOString()
  const page1 = await gqlOk(app, LOG, { f: { action: 'serial.created', since }, first: 2 })
  t.equal(page1.auditLog.edges.length, 2)
  t.equal(page1.auditLog.pageInfo.hasNextPage, true)
  const page2 = await gqlOk(app, LOG, { f: { action: 'serial.created', since }, first: 2, after: page1.auditLog.pageInfo.endCursor })
  t.ok(page2.auditLog.edges.length >= 1)
  const ids1 = new Set(page1.auditLog.edges.map((e: any) => e.node.id))
  t.notOk(page2.auditLog.edges.some((e: any) => ids1.has(e.node.id)), 'pages do not overlap')

  const future = await gqlOk(app, LOG, { f: { since: new Date(Date.now() + 3_600_000).toISOString() }, first: 10 })
  t.same(future.auditLog.edges, [])
  const past = await gqlOk(app, LOG, { f: { until: '2001-01-01T00:00:00Z' }, first: 10 })
  t.same(past.auditLog.edges, [])

  const mine = await gqlOk(app, LOG, { first: 100 }, manager)
  t.ok(mine.auditLog.edges.length > 0)
  t.ok(mine.auditLog.edges.every((e: any) => e.node.clientId === client.id), 'only its own client')
  const theirs = await gqlOk(app, LOG, { f: { targetId: other.id }, first: 10 }, manager)
  t.same(theirs.auditLog.edges, [])

  const big = await gql(app, LOG, { first: 101 })
  t.equal(big.errors?.[0]?.extensions.code, 'VALIDATION_ERROR', 'at most 100 per page')
})

t.test('verifyAuditLog finds the first edited row; hash chain links every entry', async (t) => {
  // Its own database: the broken chain must not be seen by other test files.
  const url = await freshDatabase(t)
  const app = await build(t, { background: false, env: url ? { DATABASE_URL: url } : {} })
  const client = await createClient(app)
  await createSerial(app, client.id)
  await createSerial(app, client.id)
  const ok = await gqlOk(app, '{ verifyAuditLog { valid checked firstBrokenId } }')
  t.equal(ok.verifyAuditLog.valid, true)
  t.ok(ok.verifyAuditLog.checked >= 3)
  const auditor = await createApiKey(app, 'AUDITOR')
  t.equal((await gqlOk(app, '{ verifyAuditLog { valid } }', {}, auditor)).verifyAuditLog.valid, true, 'AUDITOR may verify')
  const manager = await createApiKey(app, 'MANAGER', client.id)
  t.equal((await gql(app, '{ verifyAuditLog { valid } }', {}, manager)).errors?.[0]?.extensions.code, 'FORBIDDEN')

  const db = app.deps.database.db
  const [target] = await queryRows<{ id: string }>(db, sql`select id from audit_log where client_id = ${client.id} and action = 'serial.created' order by seq limit 1`)
  await db.execute(sql`update audit_log set changes = '{"forged": true}'::jsonb where id = ${target!.id}`)
  const broken = await gqlOk(app, '{ verifyAuditLog { valid checked firstBrokenId } }')
  t.equal(broken.verifyAuditLog.valid, false)
  t.equal(broken.verifyAuditLog.firstBrokenId, target!.id)
})

t.test('appends from two instances stay one linear chain', async (t) => {
  const url = await freshDatabase(t)
  const env = { REDIS_PREFIX: `audit${process.pid}`, ...(url ? { DATABASE_URL: url } : {}) }
  const one = await build(t, { background: false, env })
  const two = await build(t, { background: false, env })
  const c1 = await createClient(one)
  const c2 = await createClient(two)
  await Promise.all(Array.from({ length: 10 }, (_, i) => createSerial(i % 2 ? one : two, i % 2 ? c1.id : c2.id)))
  const res = await gqlOk(one, '{ verifyAuditLog { valid } }')
  t.equal(res.verifyAuditLog.valid, true)
  const rows = await queryRows<{ n: number }>(one.deps.database.db, sql`select count(*)::int as n from audit_log a join audit_log b on a.prev_hash = b.prev_hash and a.id <> b.id`)
  t.equal(rows[0]!.n, 0, 'no two entries share a predecessor')
})
