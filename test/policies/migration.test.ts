// The policies migration on a database holding data from before it: existing serials keep
// working exactly as before (no policy, own limits, no leases), and serials that had already
// expired are not announced again as news.
import t from 'tap'
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { drizzle } from 'drizzle-orm/pglite'
import { migrate } from 'drizzle-orm/pglite/migrator'
import { migrationsFolder } from '../../src/infra/database.ts'

t.test('existing serials, devices and expiries survive the policies migration unchanged', async (t) => {
  const all = migrationsFolder()
  const dirs = readdirSync(all).filter((d) => /^\d+_/.test(d)).sort()
  const firstNew = dirs.findIndex((d) => d.endsWith('_policies'))
  t.ok(firstNew > 0, 'the policies migration exists')
  const before = mkdtempSync(join(tmpdir(), 'mig-'))
  t.teardown(() => rmSync(before, { recursive: true, force: true }))
  for (const d of dirs.slice(0, firstNew)) cpSync(join(all, d), join(before, d), { recursive: true })

  const client = new PGlite()
  t.teardown(() => client.close())
  const db = drizzle({ client })
  await migrate(db, { migrationsFolder: before })
  await client.exec(`
    insert into clients (id, client_number, name, contact_email_enc) values ('cli_1', 'OLD-1', 'Old', 'x');
    insert into serials (id, client_id, number_hash, number_enc, number_tail, max_usage_count, active_devices, expires_at)
      values ('ser_live', 'cli_1', 'h1', 'e1', 'AAAAA', 3, 1, now() + interval '3 days'),
             ('ser_gone', 'cli_1', 'h2', 'e2', 'BBBBB', 1, 0, now() - interval '3 days'),
             ('ser_free', 'cli_1', 'h3', 'e3', 'CCCCC', 2, 0, null);
    insert into devices (id, serial_id, device_id) values ('dev_1', 'ser_live', 'pc');`)

  await migrate(db, { migrationsFolder: all })
  const serials = await client.query<Record<string, unknown>>(`select id, max_usage_count, active_devices, policy_id, inherits_max_devices, inherits_duration,
      expiring_notified_at is not null as expiring_done, expired_notified_at is not null as expired_done from serials order by id`)
  t.same(serials.rows, [
    { id: 'ser_free', max_usage_count: 2, active_devices: 0, policy_id: null, inherits_max_devices: false, inherits_duration: false, expiring_done: false, expired_done: false },
    { id: 'ser_gone', max_usage_count: 1, active_devices: 0, policy_id: null, inherits_max_devices: false, inherits_duration: false, expiring_done: true, expired_done: true },
    { id: 'ser_live', max_usage_count: 3, active_devices: 1, policy_id: null, inherits_max_devices: false, inherits_duration: false, expiring_done: false, expired_done: false }
  ], 'limits kept, no policy; only the already-expired serial is marked as announced')
  const devices = await client.query<Record<string, unknown>>('select id, active, lease_expires_at from devices')
  t.same(devices.rows, [{ id: 'dev_1', active: true, lease_expires_at: null }], 'existing slots are not leases: never culled')
  const policies = await client.query<{ n: number }>('select count(*)::int as n from policies')
  t.equal(policies.rows[0]!.n, 0)
})
