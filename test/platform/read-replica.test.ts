// DATABASE_READ_URL: lists and analytics read from a real streaming replica (a primary and a hot
// standby this file starts on its own loopback ports); writes and read-after-write stay on the
// primary. Proved by pausing replay on the replica: lists miss a fresh row, the primary paths see it.
import postgres from 'postgres'
import t from 'tap'
import { ownReplication, replicaMissing } from '../cluster-servers.ts'
import { build, createClient, createSerial, gqlOk, restValidate } from '../helper.ts'

const missing = replicaMissing()
if (missing && process.env.CI === 'true') throw new Error(`CI=true but a PostgreSQL replica cannot be started: ${missing}`)

async function until (what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!await fn()) {
    if (Date.now() > end) throw new Error(`${what}: not reached in time`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const CLIENT_IDS = 'query { clients(first: 100) { edges { node { id } } } }'
const SERIAL_IDS = 'query ($c: ID!) { serials(first: 100, filter: { clientId: $c }) { edges { node { id } } } }'
const STATS = 'query ($id: ID!) { clientStatistics(clientId: $id) { clientId serialsTotal } }'
const ids = (data: any, field: string): string[] => data[field].edges.map((e: { node: { id: string } }) => e.node.id)

t.test('lists and analytics on the replica, writes and read-after-write on the primary', { skip: missing }, async (t) => {
  const { primaryUrl, replicaUrl } = await ownReplication(t)
  const primary = postgres(primaryUrl, { max: 1, onnotice: () => {} })
  const replica = postgres(replicaUrl, { max: 1, onnotice: () => {} })
  t.teardown(() => Promise.all([primary.end({ timeout: 5 }), replica.end({ timeout: 5 })]))
  const [standby] = await replica`select pg_is_in_recovery() as recovery`
  t.equal(standby!.recovery, true, 'the read URL is a standby')

  const caughtUp = async () => {
    const [current] = await primary`select pg_current_wal_lsn()::text as lsn`
    const [lag] = await replica`select pg_wal_lsn_diff(${current!.lsn}::pg_lsn, pg_last_wal_replay_lsn()) > 0 as behind`
    return lag!.behind === false
  }

  const app = await build(t, { env: { DATABASE_URL: primaryUrl, DATABASE_READ_URL: replicaUrl } })
  t.not(app.deps.database.readDb, app.deps.database.db, 'a separate read pool')

  const before = await createClient(app)
  await until('replica caught up', caughtUp)
  t.ok(ids(await gqlOk(app, CLIENT_IDS), 'clients').includes(before.id), 'a replicated client is listed')

  await replica`select pg_wal_replay_pause()`
  await until('replay paused', async () => (await replica`select pg_get_wal_replay_pause_state() as s`)[0]!.s === 'paused')

  // Written while the replica stands still.
  const fresh = await createClient(app)
  const serial = await createSerial(app, fresh.id)
  const oldSerial = await createSerial(app, before.id)

  t.notOk(ids(await gqlOk(app, CLIENT_IDS), 'clients').includes(fresh.id), 'clients list: read on the replica, which lacks the new client')
  t.notOk(ids(await gqlOk(app, SERIAL_IDS, { c: before.id }), 'serials').includes(oldSerial.id), 'serials list: read on the replica')
  const stats = await gqlOk(app, STATS, { id: fresh.id })
  t.same(stats.clientStatistics, { clientId: fresh.id, serialsTotal: 0 }, 'analytics: counted on the replica; the client itself is checked on the primary')

  // Read-after-write paths: the primary.
  t.equal((await gqlOk(app, 'query ($id: ID!) { client(id: $id) { id } }', { id: fresh.id })).client.id, fresh.id, 'client(id) sees the new client')
  t.equal((await gqlOk(app, 'query ($id: ID!) { serial(id: $id) { id } }', { id: serial.id })).serial.id, serial.id, 'serial(id) sees the new serial')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'VALID', 'validation reads the primary')
  const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc', quantity: 2 } })
  t.equal(usage.statusCode, 201)
  const eventId = (usage.json() as { usageEvent: { id: string } }).usageEvent.id
  const node = await gqlOk(app, 'query ($id: ID!) { node(id: $id) { __typename id } }', { id: eventId })
  t.same(node.node, { __typename: 'UsageEvent', id: eventId }, 'node(id) of a just-written row: the primary')
  const renamed = await gqlOk(app, 'mutation ($input: UpdateClientInput!) { updateClient(input: $input) { id name } }', { input: { id: fresh.id, name: 'Renamed while the replica is paused' } })
  t.equal(renamed.updateClient.name, 'Renamed while the replica is paused', 'writes go to the primary')
  const [row] = await primary`select name from clients where id = ${fresh.id}`
  t.equal(row!.name, 'Renamed while the replica is paused')
  t.equal((await replica`select count(*)::int as n from clients where id = ${fresh.id}`)[0]!.n, 0, 'and nothing of it is on the paused replica yet')

  await replica`select pg_wal_replay_resume()`
  await until('replica caught up again', caughtUp)
  t.ok(ids(await gqlOk(app, CLIENT_IDS), 'clients').includes(fresh.id), 'listed once replayed')
  t.ok(ids(await gqlOk(app, SERIAL_IDS, { c: before.id }), 'serials').includes(oldSerial.id))
  t.equal((await gqlOk(app, STATS, { id: fresh.id })).clientStatistics.serialsTotal, 1)
})
