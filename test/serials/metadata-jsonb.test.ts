// jsonb values are stored as what they are: an object is a jsonb object (jsonb_typeof 'object'),
// never a JSON string holding its text. postgres.js JSON-encodes a parameter typed jsonb, so a
// JSON text bound as `${text}::jsonb` was stored double-encoded there (PGlite did not). And the
// repair migration: rows already stored as a string holding a JSON object become that object;
// any other string is left as it is.
import { readFileSync, readdirSync, cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import t, { type Test as Tap } from 'tap'
import { migrationsFolder, queryRows, type Executor } from '../../src/infra/database.ts'
import { build, createClient, gqlOk } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'

const METADATA = { plan: 'gold', seats: 3, nested: { tags: ['a', 'b'], none: null } }
const REPAIR = 'metadata_double_encoded'

/**
 * Every jsonb column of the schema and how to find the rows one client wrote in it. A jsonb
 * column added later fails the first assertion until it is listed here (and so checked).
 */
const JSONB_COLUMNS: Record<string, (clientId: string) => ReturnType<typeof sql>> = {
  'audit_log.changes': (c) => sql`select jsonb_typeof(changes) as t, count(*)::int as n from audit_log where client_id = ${c} group by 1`,
  'idempotency_keys.response': (c) => sql`select jsonb_typeof(response) as t, count(*)::int as n from idempotency_keys
    where response is not null and (scope = ${`bulk:${c}`} or scope in (select 'usage:' || id from serials where client_id = ${c})) group by 1`,
  'outbox.payload': (c) => sql`select jsonb_typeof(payload) as t, count(*)::int as n from outbox where client_id = ${c} group by 1`,
  'serials.metadata': (c) => sql`select jsonb_typeof(metadata) as t, count(*)::int as n from serials where client_id = ${c} group by 1`,
  'webhook_deliveries.payload': (c) => sql`select jsonb_typeof(d.payload) as t, count(*)::int as n from webhook_deliveries d
    join webhooks w on w.id = d.webhook_id where w.client_id = ${c} group by 1`
}

t.test('every jsonb value the API writes is stored as a jsonb object, read back as an object', async (t) => {
  const app = await build(t, { background: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true' } })
  const db = app.deps.database.db
  const client = await createClient(app)

  const columns = await queryRows<{ c: string }>(db, sql`select table_name || '.' || column_name as c from information_schema.columns
    where table_schema = current_schema() and data_type = 'jsonb' and table_name not like 'usage_events_%' order by 1`)
  t.same(columns.map((r) => r.c), Object.keys(JSONB_COLUMNS).sort(), 'every jsonb column of the schema is checked below')

  await gqlOk(app, 'mutation ($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } } }', { i: { clientId: client.id, url: 'http://127.0.0.1:9/hook' } })
  const one = await gqlOk(app, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serial { id metadata } serialNumber } }', { i: { clientId: client.id, metadata: METADATA } })
  t.same(one.createSerial.serial.metadata, METADATA, 'createSerial answers the object')
  const many = await gqlOk(app, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serial { id metadata } } } }', { i: { clientId: client.id, count: 3, metadata: METADATA, idempotencyKey: 'jsonb-batch' } })
  const plain = await gqlOk(app, 'mutation ($i: CreateSerialsInput!) { createSerials(input: $i) { serials { serial { id } } } }', { i: { clientId: client.id, count: 2, metadata: { plan: 'silver' } } })
  const noMetadata = await gqlOk(app, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serial { id } } }', { i: { clientId: client.id } })
  const updated = await gqlOk(app, 'mutation ($i: CreateSerialInput!) { createSerial(input: $i) { serial { id } serialNumber } }', { i: { clientId: client.id, metadata: { plan: 'bronze' } } })
  await gqlOk(app, 'mutation ($i: UpdateSerialInput!) { updateSerial(input: $i) { id } }', { i: { id: updated.createSerial.serial.id, metadata: { plan: 'platinum', seats: 9 } } })
  const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', headers: { 'idempotency-key': 'jsonb-usage' }, payload: { serialNumber: one.createSerial.serialNumber, deviceId: 'pc-1' } })
  t.equal(usage.statusCode, 201)
  await app.deps.relay.drain()

  // Read back through the API and straight from the table.
  const read = async (id: string) => (await gqlOk(app, 'query ($id: ID!) { serial(id: $id) { metadata } }', { id })).serial.metadata
  t.same(await read(one.createSerial.serial.id), METADATA, 'createSerial: serial(id).metadata is the object')
  t.same(await read(many.createSerials.serials[1].serial.id), METADATA, 'createSerials: the object')
  t.same(await read(plain.createSerials.serials[0].serial.id), { plan: 'silver' }, 'createSerials without a key: the object')
  t.same(await read(noMetadata.createSerial.serial.id), {}, 'no metadata: an empty object')
  t.same(await read(updated.createSerial.serial.id), { plan: 'platinum', seats: 9 }, 'updateSerial: the object')
  const stored = await queryRows<{ t: string, plan: string | null }>(db, sql`select jsonb_typeof(metadata) as t, metadata->>'plan' as plan from serials where id = ${one.createSerial.serial.id}`)
  t.same(stored, [{ t: 'object', plan: 'gold' }], 'jsonb_typeof(metadata) = object, and metadata->>\'plan\' finds the value')

  for (const [column, query] of Object.entries(JSONB_COLUMNS)) {
    const types = await queryRows<{ t: string, n: number }>(db, query(client.id))
    t.ok(types.length > 0, `${column}: this test wrote rows`)
    t.same(types.filter((r) => r.t !== 'object'), [], `${column}: every value is a jsonb object (${JSON.stringify(types)})`)
  }
})

/** The repair on rows planted as the bug left them, through the real migrator, on one database. */
async function plantAndRepair (t: Tap, db: Executor, migrateTo: (folder: string) => Promise<void>) {
  const all = migrationsFolder()
  const dirs = readdirSync(all).filter((d) => /^\d+_/.test(d)).sort()
  const repair = dirs.findIndex((d) => d.endsWith(`_${REPAIR}`))
  t.ok(repair > 0, 'the repair migration exists')
  const before = mkdtempSync(join(tmpdir(), 'mig-'))
  t.teardown(() => rmSync(before, { recursive: true, force: true }))
  for (const d of dirs.slice(0, repair)) cpSync(join(all, d), join(before, d), { recursive: true })
  await migrateTo(before)

  const at = '2026-01-01T00:00:00.000Z'
  // As postgres.js stored them: to_jsonb(text) is a jsonb string holding the text.
  const planted: Array<[string, ReturnType<typeof sql>]> = [
    ['ser_gold', sql`to_jsonb(${JSON.stringify(METADATA)}::text)`],
    ['ser_empty_object', sql`to_jsonb('{}'::text)`],
    ['ser_object', sql`${JSON.stringify({ plan: 'silver' })}::text::jsonb`],
    ['ser_not_json', sql`to_jsonb('not json'::text)`],
    ['ser_broken', sql`to_jsonb('{"plan":'::text)`],
    ['ser_array', sql`to_jsonb('[1,2]'::text)`],
    ['ser_twice', sql`to_jsonb(${JSON.stringify(JSON.stringify({ plan: 'gold' }))}::text)`],
    ['ser_empty', sql`to_jsonb(''::text)`],
    ['ser_number', sql`'42'::jsonb`]
  ]
  await db.execute(sql`insert into clients (id, client_number, name, contact_email_enc) values ('cli_repair', 'REPAIR-1', 'Repair', 'x')`)
  for (const [id, value] of planted) {
    await db.execute(sql`insert into serials (id, client_id, number_hash, number_enc, number_tail, metadata, created_at, updated_at)
      values (${id}, 'cli_repair', ${`h_${id}`}, 'e', 'AAAAA', ${value}, ${at}::timestamptz, ${at}::timestamptz)`)
  }
  const beforeRepair = await queryRows<{ id: string, t: string }>(db, sql`select id, jsonb_typeof(metadata) as t from serials where id = 'ser_gold'`)
  t.same(beforeRepair, [{ id: 'ser_gold', t: 'string' }], 'planted: a jsonb string, as the bug stored it')

  await migrateTo(all)
  const rows = await queryRows<{ id: string, t: string, m: string, updated: boolean }>(db, sql`select id, jsonb_typeof(metadata) as t, metadata::text as m,
    updated_at = ${at}::timestamptz as updated from serials where client_id = 'cli_repair' order by id`)
  const byId = Object.fromEntries(rows.map((r) => [r.id, r]))
  t.same(JSON.parse(byId.ser_gold!.m), METADATA, 'a string holding an object becomes the object')
  t.equal(byId.ser_gold!.t, 'object')
  t.same([byId.ser_empty_object!.t, byId.ser_empty_object!.m], ['object', '{}'], 'an empty object too')
  t.same([byId.ser_object!.t, JSON.parse(byId.ser_object!.m)], ['object', { plan: 'silver' }], 'a stored object is untouched')
  for (const [id, text] of [['ser_not_json', 'not json'], ['ser_broken', '{"plan":'], ['ser_array', '[1,2]'], ['ser_twice', JSON.stringify(JSON.stringify({ plan: 'gold' }))], ['ser_empty', '']] as const) {
    t.same([byId[id]!.t, JSON.parse(byId[id]!.m)], ['string', text], `${id}: a string not holding an object is left as it is`)
  }
  t.same([byId.ser_number!.t, byId.ser_number!.m], ['number', '42'], 'a non-string value is left as it is')
  t.ok(rows.every((r) => r.updated), 'updated_at unchanged: only the encoding was repaired')

  // Running the repair again (a restore of an old backup, say) changes nothing more.
  const text = readFileSync(join(all, dirs[repair]!, 'migration.sql'), 'utf8')
  for (const statement of text.split('--> statement-breakpoint')) await db.execute(sql.raw(statement))
  const again = await queryRows<{ id: string, t: string, m: string }>(db, sql`select id, jsonb_typeof(metadata) as t, metadata::text as m from serials where client_id = 'cli_repair' order by id`)
  t.same(again, rows.map(({ id, t, m }) => ({ id, t, m })), 'the repair is idempotent')
}

t.test('the repair migration decodes double-encoded metadata, and only that (PGlite)', async (t) => {
  const { PGlite } = await import('@electric-sql/pglite')
  const { drizzle } = await import('drizzle-orm/pglite')
  const { migrate } = await import('drizzle-orm/pglite/migrator')
  const client = new PGlite()
  t.teardown(() => client.close())
  const db = drizzle({ client })
  await plantAndRepair(t, db as unknown as Executor, async (folder) => { await migrate(db, { migrationsFolder: folder }) })
})

t.test('the repair migration decodes double-encoded metadata, and only that (PostgreSQL)', async (t) => {
  const url = await freshDatabase(t)
  if (!url) { t.pass('no TEST_DATABASE_URL: PostgreSQL is covered when it is set'); return }
  const { default: postgres } = await import('postgres')
  const { drizzle } = await import('drizzle-orm/postgres-js')
  const { migrate } = await import('drizzle-orm/postgres-js/migrator')
  const client = postgres(url, { max: 1, onnotice: () => {} })
  t.teardown(() => client.end({ timeout: 5 }))
  const db = drizzle({ client })
  await plantAndRepair(t, db as unknown as Executor, async (folder) => { await migrate(db, { migrationsFolder: folder }) })
})
