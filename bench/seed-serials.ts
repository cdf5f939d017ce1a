// Shared by the operations benches: one client with `total` serials issued through the service
// (createSerials, 10,000 a call) on the database at `url`, then one active device per serial in SQL,
// as validations would leave them. Returns the client's id and an open connection to that database.
import { randomBytes } from 'node:crypto'
import postgres from 'postgres'
import { buildApp } from '../src/main/app.ts'
import { loadConfig } from '../src/config/config.ts'

export async function seedSerials (url: string, total: number, dataDir: string): Promise<{ clientId: string, db: postgres.Sql }> {
  const app = await buildApp(await loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, DATABASE_URL: url, LOG_LEVEL: 'silent', ADMIN_API_KEY: 'bench-admin-key-0123456789abcdefghijklmnop' }), { logger: false, background: false })
  await app.ready()
  const actor = { id: 'bench', role: 'ADMIN', clientId: null } as never
  const client = await app.deps.services.clients.create(actor, undefined, { clientNumber: `BENCH-${randomBytes(3).toString('hex')}`, name: 'Bench', contactEmail: 'bench@example.com' }) as { id: string }
  for (let done = 0; done < total; done += 10_000) {
    await app.deps.services.serials.createMany(actor, undefined, { clientId: client.id, count: Math.min(10_000, total - done), maxUsageCount: 3 })
  }
  await app.close()
  const db = postgres(url, { max: 1, onnotice: () => {} })
  // Ids in the service's own form (dev_ + 26 of 0-9 A-Z): an import refuses any other.
  await db.unsafe("insert into devices (id, serial_id, device_id) select 'dev_' || upper(substr(md5(id), 1, 26)), id, 'device-1' from serials")
  await db.unsafe('update serials set active_devices = 1')
  return { clientId: client.id, db }
}
