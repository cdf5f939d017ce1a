// issue #28 item 1: an import must not trust its file. Tampered exports of client A — some with
// only the checksum recomputed (anyone can), most signed again with the right key (an insider, or
// a compromised source) — are imported into a deployment that holds another client B. Each must be
// refused with one clear line and leave the target exactly as it was; the variants that only
// forge counters or an audit entry are imported with the counters recomputed and the entry marked.
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { tablesInOrder } from '../../src/domain/operations/backup.ts'
import { EXPORT_TABLES, exportClient, importClient } from '../../src/domain/operations/export-import.ts'
import { verifyAuditChain } from '../../src/domain/audit/audit-log.ts'
import { queryRows, type Db } from '../../src/infra/database.ts'
import { build, createApiKey, createClient, createSerial, gqlOk } from '../helper.ts'
import { freshDatabase } from '../security/fresh-database.ts'
import { addRow, copyOf, readExport, rowsOf, writeExport, type ExportParts } from './export-files.ts'

t.setTimeout(600_000)

const KEY = 'shared-signing-key-0123456789abcdef'
const TARGET_SECRETS = {
  ENCRYPTION_PEPPER: 'target-deployment-pepper-0123456789abcdef',
  ENCRYPTION_KEY: 'cd'.repeat(32),
  JWT_SECRET: 'target-deployment-jwt-secret-0123456789abcdef'
}
const ORDER = EXPORT_TABLES.map((s) => s.table)
const HOOK_URL = 'https://93.184.216.34/serials'

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'serials-tamper-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Every row of every table, as one digest per table: "exactly as it was". The outbox relay marks
 * the target's own events published whenever it runs: that column is the service's, not the import's.
 */
async function fingerprint (db: Db): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const table of await tablesInOrder(db)) {
    const rows = table === 'outbox' ? sql`(select id, type, aggregate_id, client_id, payload, created_at from outbox)` : sql.identifier(table)
    const [row] = await queryRows<{ n: number, h: string | null }>(db, sql`select count(*)::int as n, md5(string_agg(t::text, '|' order by t::text)) as h from ${rows} t`)
    out[table] = `${row!.n}:${row!.h ?? ''}`
  }
  return out
}

async function seedSource (app: FastifyInstance) {
  const client = await createClient(app, { contactEmail: 'a@acme.test' })
  const { createPolicy: policy } = await gqlOk(app, 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }', { input: { name: 'Pro', maxDevices: 2, entitlements: ['SYNC'] } })
  const s1 = await createSerial(app, client.id, { policyId: policy.id })
  const s2 = await createSerial(app, client.id, { maxDevices: 2 })
  const s3 = await createSerial(app, client.id)
  for (const [serial, device] of [[s1, 'dev-a'], [s2, 'dev-1']] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: serial.serialNumber, deviceId: device, deviceInfo: { os: 'linux' } } })
    if (res.json().code !== 'VALID') throw new Error(res.body)
    const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: device, quantity: 3, feature: 'export' } })
    if (usage.statusCode !== 201) throw new Error(usage.body)
  }
  await gqlOk(app, 'mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { id } }', { i: { id: s3.id, reason: 'refund' } })
  await gqlOk(app, 'mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }', { input: { clientId: client.id, url: HOOK_URL, events: ['serial.revoked'] } })
  await createApiKey(app, 'MANAGER', client.id)
  return { client, policy, serials: [s1, s2, s3] }
}

interface Other { clientId: string, clientNumber: string, serialId: string, policyId: string, deviceRowId: string }

/** The target's own client B, with a serial, a device and a policy that forged rows may name. */
async function newTarget (t: Test): Promise<{ app: FastifyInstance, other: Other }> {
  const url = await freshDatabase(t)
  const app = await build(t, { background: false, env: { ...TARGET_SECRETS, ...(url ? { DATABASE_URL: url } : {}) } })
  const client = await createClient(app)
  const { createPolicy: policy } = await gqlOk(app, 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }', { input: { name: 'B only', maxDevices: 1 } })
  const serial = await createSerial(app, client.id)
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: serial.serialNumber, deviceId: 'b-device' } })
  if (res.json().code !== 'VALID') throw new Error(res.body)
  const [device] = await queryRows<{ id: string }>(app.deps.database.db, sql`select id from devices where serial_id = ${serial.id}`)
  return { app, other: { clientId: client.id, clientNumber: client.clientNumber, serialId: serial.id, policyId: policy.id, deviceRowId: device!.id } }
}

type Edit = (p: ExportParts, other: Other) => void
interface Attack { kind: string, name: string, edit: Edit, expect: RegExp, /** default: signed again with KEY */ sign?: string | null }

const first = (p: ExportParts, table: string) => rowsOf(p, table)[0]!
const serialWithDevice = (p: ExportParts) => rowsOf(p, 'serials').find((s) => s.id === first(p, 'devices').serial_id)!
const randomId = (prefix: string) => `${prefix}_${'7'.repeat(26)}`

const ATTACKS: Attack[] = [
  // The file's origin: recomputing the SHA-256 is not enough; no MAC, no import.
  { kind: 'signature', name: 'usage quantity raised, SHA-256 recomputed', sign: null, expect: /signature does not verify/, edit: (p) => { first(p, 'usage_events').quantity = 1_000_000 } },
  { kind: 'signature', name: 'a forged audit entry, SHA-256 recomputed', sign: null, expect: /signature does not verify/, edit: (p) => { addRow(p, 'audit_log', { ...first(p, 'audit_log'), id: randomId('aud'), action: 'serial.revoked' }, ORDER) } },
  { kind: 'signature', name: 'MAC removed from the manifest', sign: null, expect: /manifest has no MAC/, edit: (p) => { delete p.manifest.mac } },
  { kind: 'signature', name: 'signature removed from the header', sign: null, expect: /not signed/, edit: (p) => { delete p.header.signature } },
  { kind: 'signature', name: 'an unsigned version-1 file', sign: null, expect: /version 1 is not supported: it is not signed/, edit: (p) => { p.header.version = 1; delete p.header.signature; delete p.manifest.mac } },
  { kind: 'signature', name: 'signed with another key', sign: 'the attacker\'s own key', expect: /signature does not verify/, edit: (p) => { first(p, 'serials').max_usage_count = 9_999 } },
  { kind: 'signature', name: 'header salt replaced', sign: null, expect: /signature does not verify/, edit: (p) => { p.header.signature = { ...p.header.signature, salt: Buffer.alloc(16, 7).toString('base64') } } },
  { kind: 'signature', name: 'signature said to be keyed by the passphrase', sign: null, expect: /signed with its passphrase: pass --passphrase-env/, edit: (p) => { p.header.signature = { ...p.header.signature, keyFrom: 'passphrase' } } },
  { kind: 'signature', name: 'MAC of another file', sign: null, expect: /signature does not verify/, edit: (p) => { p.manifest.mac = 'ab'.repeat(32) } },

  // Rows of other clients, or naming what the file does not hold.
  { kind: 'ownership', name: 'a serial of client B', expect: /client_id names another client/, edit: (p, o) => { first(p, 'serials').client_id = o.clientId } },
  { kind: 'ownership', name: 'a usage event of client B', expect: /client_id names another client/, edit: (p, o) => { first(p, 'usage_events').client_id = o.clientId } },
  { kind: 'ownership', name: 'a webhook for client B to the attacker\'s URL with the attacker\'s secret', expect: /client_id names another client/, edit: (p, o) => { Object.assign(first(p, 'webhooks'), { client_id: o.clientId, url: 'https://93.184.216.35/steal', secret: `whsec_${'A'.repeat(43)}` }) } },
  { kind: 'ownership', name: 'a webhook for every client', expect: /client_id names another client/, edit: (p) => { first(p, 'webhooks').client_id = null } },
  { kind: 'ownership', name: 'an audit entry of client B', expect: /client_id names another client/, edit: (p, o) => { first(p, 'audit_log').client_id = o.clientId } },
  { kind: 'ownership', name: 'an audit entry of no client', expect: /client_id names another client/, edit: (p) => { first(p, 'audit_log').client_id = null } },
  { kind: 'ownership', name: 'a device on client B\'s serial', expect: /devices: a row names serial ser_\w+, which is not one of the file's/, edit: (p, o) => { first(p, 'devices').serial_id = o.serialId } },
  { kind: 'ownership', name: 'a usage event on client B\'s serial', expect: /usage_events: a row names serial/, edit: (p, o) => { first(p, 'usage_events').serial_id = o.serialId } },
  { kind: 'ownership', name: 'validation statistics on client B\'s serial', expect: /validation_stats: a row names serial/, edit: (p, o) => { addRow(p, 'validation_stats', { serial_id: o.serialId, client_id: p.header.clientId, hour: '2026-01-01T10:00:00+00:00', code: 'VALID', count: 5 }, ORDER) } },
  { kind: 'ownership', name: 'a daily usage rollup on a serial nobody has', expect: /usage_daily: a row names serial/, edit: (p) => { first(p, 'usage_daily').serial_id = randomId('ser') } },
  { kind: 'ownership', name: 'a second client row (client B again)', expect: /client_id|second client row|is not the client/, edit: (p, o) => { p.rows.splice(1, 0, { t: 'clients', r: { ...first(p, 'clients'), id: o.clientId } }) } },
  { kind: 'ownership', name: 'the client row is another client than the header', expect: /is not the client the header names/, edit: (p) => { first(p, 'clients').id = randomId('cli') } },
  { kind: 'ownership', name: 'a serial under client B\'s policy', expect: /uses policy pol_\w+, which the file does not hold/, edit: (p, o) => { first(p, 'serials').policy_id = o.policyId } },
  { kind: 'ownership', name: 'a vendor-wide policy no serial uses', expect: /no serial of the file uses it/, edit: (p) => { addRow(p, 'policies', { ...first(p, 'policies'), id: randomId('pol'), name: 'Free for all', max_devices: 100_000 }, ORDER) } },
  { kind: 'ownership', name: 'a device with the id of client B\'s device', expect: /devices: dev_\w+ already exists here/, edit: (p, o) => { first(p, 'devices').id = o.deviceRowId } },
  { kind: 'ownership', name: 'the whole file renamed to client B', expect: /already exists here/, edit: (p, o) => { retarget(p, o.clientId, o.clientNumber) } },
  { kind: 'ownership', name: 'an activation of a device the file does not hold', expect: /names a device the file does not hold/, edit: (p) => { addRow(p, 'device_activations', { serial_id: first(p, 'serials').id, device_id: 'ghost', activated_at: '2026-01-01T10:00:00+00:00' }, ORDER) } },
  { kind: 'ownership', name: 'hourly usage of client B', expect: /client_id names another client/, edit: (p, o) => { first(p, 'usage_client_hourly').client_id = o.clientId } },
  { kind: 'ownership', name: 'minutely validations of client B', expect: /client_id names another client/, edit: (p, o) => { addRow(p, 'validation_client_minutely', { client_id: o.clientId, minute: '2026-01-01T10:01:00+00:00', code: 'VALID', count: 1 }, ORDER) } },

  // Counters and limits.
  { kind: 'counters', name: '5 active devices on a 2-seat serial whose counter reads 0/2', expect: /has 5 active devices, more than its limit of 2/, edit: (p) => { devicesOn(p, 2, 5) } },
  { kind: 'counters', name: '9,999 devices on a 2-seat serial', expect: /has 9999 active devices, more than its limit of 2/, edit: (p) => { devicesOn(p, 2, 9_999) } },
  { kind: 'counters', name: 'a device limit of 100,001', expect: /max_usage_count .*100000/, edit: (p) => { first(p, 'serials').max_usage_count = 100_001 } },
  { kind: 'counters', name: 'a usage event of 1,000,001', expect: /quantity .*1000000/, edit: (p) => { first(p, 'usage_events').quantity = 1_000_001 } },
  { kind: 'counters', name: 'a usage event of 0', expect: /quantity .*>=1/, edit: (p) => { first(p, 'usage_events').quantity = 0 } },
  { kind: 'counters', name: 'a negative validation count', expect: /validation_count/, edit: (p) => { first(p, 'devices').validation_count = -1 } },
  { kind: 'counters', name: 'a trillion consecutive failures', expect: /consecutive_failures/, edit: (p) => { first(p, 'webhooks').consecutive_failures = 1e12 } },
  { kind: 'counters', name: 'a fractional device limit', expect: /max_usage_count .*int/, edit: (p) => { first(p, 'serials').max_usage_count = 1.5 } },
  { kind: 'counters', name: 'a device limit as text', expect: /max_usage_count .*number/, edit: (p) => { first(p, 'serials').max_usage_count = '2' } },

  // Every field through the API's rules.
  { kind: 'fields', name: '5 KiB of metadata', expect: /metadata must be at most 4 KiB/, edit: (p) => { first(p, 'serials').metadata = { blob: 'x'.repeat(5000) } } },
  { kind: 'fields', name: 'metadata that is an array', expect: /metadata/, edit: (p) => { first(p, 'serials').metadata = ['not', 'an', 'object'] } },
  { kind: 'fields', name: 'metadata 40 levels deep', expect: /metadata must nest at most 32 levels/, edit: (p) => { let v: any = {}; for (let i = 0; i < 40; i++) v = { v }; first(p, 'serials').metadata = v } },
  { kind: 'fields', name: 'a device limit of 0', expect: /max_usage_count/, edit: (p) => { first(p, 'serials').max_usage_count = 0 } },
  { kind: 'fields', name: 'status HACKED', expect: /status/, edit: (p) => { first(p, 'serials').status = 'HACKED' } },
  { kind: 'fields', name: 'an active serial with a revocation time', expect: /revoked_at a revoked serial \(and only one\)/, edit: (p) => { rowsOf(p, 'serials').find((s) => s.status === 'ACTIVE')!.revoked_at = '2026-01-01T00:00:00+00:00' } },
  { kind: 'fields', name: 'an expiry in year 275760', expect: /expires_at/, edit: (p) => { first(p, 'serials').expires_at = '+275760-09-13T00:00:00.000Z' } },
  { kind: 'fields', name: 'an expiry that is not a date', expect: /expires_at must be an ISO-8601/, edit: (p) => { first(p, 'serials').expires_at = 'tomorrow' } },
  { kind: 'fields', name: 'an empty client name', expect: /name/, edit: (p) => { first(p, 'clients').name = '' } },
  { kind: 'fields', name: 'a client name of 201 characters', expect: /name/, edit: (p) => { first(p, 'clients').name = 'n'.repeat(201) } },
  { kind: 'fields', name: 'a contact e-mail that is none', expect: /contact_email/, edit: (p) => { first(p, 'clients').contact_email = 'not-an-email' } },
  { kind: 'fields', name: 'a lower-case client number (not the stored form)', expect: /client_?[nN]umber/, edit: (p) => { p.header.clientNumber = p.header.clientNumber.toLowerCase(); first(p, 'clients').client_number = p.header.clientNumber } },
  { kind: 'fields', name: 'a quota of 0', expect: /quota_per_minute/, edit: (p) => { first(p, 'clients').quota_per_minute = 0 } },
  { kind: 'fields', name: 'a webhook to the cloud metadata address', expect: /url resolves to a loopback, link-local or private address/, edit: (p) => { first(p, 'webhooks').url = 'http://169.254.169.254/latest/meta-data' } },
  { kind: 'fields', name: 'a webhook to javascript:', expect: /url must be http or https/, edit: (p) => { first(p, 'webhooks').url = 'javascript:alert(1)' } },
  { kind: 'fields', name: 'a webhook URL of 2001 characters', expect: /url/, edit: (p) => { first(p, 'webhooks').url = `https://93.184.216.34/${'a'.repeat(1980)}` } },
  { kind: 'fields', name: 'a webhook event that does not exist', expect: /events/, edit: (p) => { first(p, 'webhooks').events = ['everything'] } },
  { kind: 'fields', name: 'a webhook secret the service never makes', expect: /secret is not a webhook secret/, edit: (p) => { first(p, 'webhooks').secret = 'whsec_short' } },
  { kind: 'fields', name: 'a device id of 129 characters', expect: /device_id/, edit: (p) => { first(p, 'devices').device_id = 'd'.repeat(129) } },
  { kind: 'fields', name: 'a device id with a NUL', expect: /device_id must be printable ASCII/, edit: (p) => { first(p, 'devices').device_id = 'dev\u0000x' } },
  { kind: 'fields', name: '3 KiB of device info', expect: /device_info must be at most 2 KiB/, edit: (p) => { first(p, 'devices').device_info = JSON.stringify({ blob: 'x'.repeat(3000) }) } },
  { kind: 'fields', name: 'device info that is not JSON', expect: /device_info is not JSON/, edit: (p) => { first(p, 'devices').device_info = '{oops' } },
  { kind: 'fields', name: 'device active = "yes"', expect: /active/, edit: (p) => { first(p, 'devices').active = 'yes' } },
  { kind: 'fields', name: 'a serial number with a wrong check character', expect: /number is not a serial number/, edit: (p) => { const s = first(p, 'serials'); s.number = `${s.number.slice(0, 24)}${s.number.at(-1) === '0' ? '1' : '0'}` } },
  { kind: 'fields', name: 'a number tail that is not the number\'s', expect: /number_tail is not the end of the serial number/, edit: (p) => { first(p, 'serials').number_tail = 'ZZZZZ' } },
  { kind: 'fields', name: 'a preset number hash', expect: /unknown columns number_hash/, edit: (p) => { first(p, 'serials').number_hash = 'f'.repeat(64) } },
  { kind: 'fields', name: 'an audit entry with its own hash and chain position', expect: /unknown columns/, edit: (p) => { Object.assign(first(p, 'audit_log'), { seq: 1, prev_hash: '0'.repeat(64), hash: 'a'.repeat(64) }) } },
  { kind: 'fields', name: 'a feature with a newline', expect: /feature must be printable ASCII/, edit: (p) => { first(p, 'usage_events').feature = 'a\nb' } },
  { kind: 'fields', name: 'a usage kind the service never writes', expect: /kind/, edit: (p) => { first(p, 'usage_events').kind = 'HEARTBEAT' } },
  { kind: 'fields', name: 'a usage IP of 1,000 characters', expect: /ip/, edit: (p) => { first(p, 'usage_events').ip = '1'.repeat(1000) } },
  { kind: 'fields', name: 'a serial id with the client prefix', expect: /id must be an id ser_/, edit: (p) => { first(p, 'serials').id = randomId('cli') } },
  { kind: 'fields', name: 'a heartbeat of 1 s', expect: /heartbeat_seconds/, edit: (p) => { first(p, 'policies').heartbeat_seconds = 1 } },
  { kind: 'fields', name: 'a policy limit of 100,001 devices', expect: /max_devices/, edit: (p) => { first(p, 'policies').max_devices = 100_001 } },
  { kind: 'fields', name: 'lower-case entitlements (not the stored form)', expect: /entitlements is not in the form the service stores/, edit: (p) => { first(p, 'policies').entitlements = ['sync'] } },
  { kind: 'fields', name: 'a validation code that does not exist', expect: /code/, edit: (p) => { addRow(p, 'validation_stats', { serial_id: first(p, 'serials').id, client_id: p.header.clientId, hour: '2026-01-01T10:00:00+00:00', code: 'BOGUS', count: 1 }, ORDER) } },
  { kind: 'fields', name: 'an hourly row off the hour', expect: /hour must be the start of an hour/, edit: (p) => { first(p, 'usage_client_hourly').hour = '2026-01-01T10:17:00+00:00' } },
  { kind: 'fields', name: 'an audit action that is SQL', expect: /action must be resource.verb/, edit: (p) => { first(p, 'audit_log').action = 'x\'; drop table serials; --' } },
  { kind: 'fields', name: 'an audit role that does not exist', expect: /actor_role/, edit: (p) => { first(p, 'audit_log').actor_role = 'ROOT' } },
  { kind: 'fields', name: '70 KiB of audit changes', expect: /changes must be at most 64 KiB/, edit: (p) => { first(p, 'audit_log').changes = { blob: 'x'.repeat(70_000) } } },
  { kind: 'fields', name: 'a revocation reason of 501 characters', expect: /revoke_reason/, edit: (p) => { rowsOf(p, 'serials').find((s) => s.status === 'REVOKED')!.revoke_reason = 'r'.repeat(501) } },
  { kind: 'fields', name: 'a serial without its status column', expect: /status is missing/, edit: (p) => { delete first(p, 'serials').status } },

  // Framing.
  { kind: 'framing', name: 'devices before their serials', expect: /rows of serials after rows of devices/, edit: (p) => { const i = p.rows.findIndex((r) => r.t === 'devices'); const [d] = p.rows.splice(i, 1); p.rows.splice(p.rows.findIndex((r) => r.t === 'serials'), 0, d!) } },
  { kind: 'framing', name: 'rows of a table that is never exported', expect: /unknown table|rowCounts: Unrecognized key: "api_keys"/, edit: (p) => { p.rows.push({ t: 'api_keys', r: { id: randomId('key') } }) } },
  { kind: 'framing', name: 'a row that is an array', expect: /not a row/, edit: (p) => { (p.rows[1] as any).r = [1, 2, 3] } },
  { kind: 'framing', name: 'metadata 1,000 levels deep', expect: /nests deeper than any row the service stores/, edit: (p) => { let v: any = 0; for (let i = 0; i < 1000; i++) v = [v]; first(p, 'serials').metadata = { v } } }
]

/** `count` active devices in all on the serial limited to `limit`, its counter left at 0. */
function devicesOn (p: ExportParts, limit: number, count: number): void {
  const serial = rowsOf(p, 'serials').find((s) => s.max_usage_count === limit && s.policy_id === null)!
  serial.active_devices = 0
  const template = rowsOf(p, 'devices').find((d) => d.serial_id === serial.id)!
  for (let i = 1; i < count; i++) {
    addRow(p, 'devices', { ...template, id: `dev_${String(i).padStart(26, '0')}`, device_id: `forged-${i}`, device_info: null, active: true }, ORDER)
  }
}

/** Every mention of the file's client replaced by another. */
function retarget (p: ExportParts, clientId: string, clientNumber: string): void {
  const from = p.header.clientId
  const text = JSON.stringify(p).replaceAll(from, clientId).replaceAll(`"${p.header.clientNumber}"`, `"${clientNumber}"`)
  Object.assign(p, JSON.parse(text))
}

t.test('tampered exports are refused and change nothing; forged counters are recomputed, forged audit entries marked', async (t) => {
  const dir = tempDir(t)
  const urlA = await freshDatabase(t)
  const source = await build(t, { background: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true', ...(urlA ? { DATABASE_URL: urlA } : {}) } })
  const seeded = await seedSource(source)
  const file = join(dir, 'a.ndjson')
  await exportClient(source.deps.database.db, source.deps.config, seeded.client.id, file, { signingKey: KEY })
  const genuine = readExport(file)
  t.ok(rowsOf(genuine, 'webhooks').length === 1 && rowsOf(genuine, 'usage_daily').length > 0 && rowsOf(genuine, 'audit_log').length > 0, 'the export holds every kind of row the attacks edit')

  let { app: target, other } = await newTarget(t)
  const forged = join(dir, 'forged.ndjson')
  const held: Record<string, [number, number]> = {}
  for (const attack of ATTACKS) {
    const parts = copyOf(genuine)
    attack.edit(parts, other)
    await writeExport(forged, parts, attack.sign === undefined ? KEY : attack.sign ?? undefined)
    const before = await fingerprint(target.deps.database.db)
    const tally = held[attack.kind] ??= [0, 0]
    tally[1]++
    let outcome: string
    try {
      await importClient(target.deps.database.db, target.deps.config, forged, { signingKey: KEY })
      outcome = 'imported'
    } catch (error) {
      outcome = (error as Error).message
    }
    const refused = outcome !== 'imported' && attack.expect.test(outcome)
    t.ok(refused, `${attack.kind}: ${attack.name}: refused`, { outcome, expected: String(attack.expect) })
    t.notOk(outcome.includes('\n'), 'in one line')
    const after = await fingerprint(target.deps.database.db)
    const same = JSON.stringify(after) === JSON.stringify(before)
    if (!same) t.comment(Object.keys(after).filter((k) => after[k] !== before[k]).join(','))
    t.ok(same, `${attack.kind}: ${attack.name}: the target is exactly as it was`)
    if (refused && same) tally[0]++
    // A variant that got in spoils the target for the next ones: start again from a fresh one.
    if (!same) ({ app: target, other } = await newTarget(t))
  }
  t.comment(`tampered variants refused with nothing changed: ${Object.entries(held).map(([kind, [ok, n]]) => `${kind} ${ok}/${n}`).join(', ')}`)

  // A refused signature is found before the database is touched at all.
  const untouchable = { transaction: () => { throw new Error('the database was touched') } } as unknown as Db
  const parts = copyOf(genuine)
  first(parts, 'serials').max_usage_count = 100_001
  await writeExport(forged, parts)
  await t.rejects(importClient(untouchable, target.deps.config, forged, { signingKey: KEY }), /signature does not verify/, 'the signature is checked before anything is written')
  await writeExport(forged, parts, KEY)
  await t.rejects(importClient(untouchable, target.deps.config, forged, { signingKey: KEY }), /max_usage_count/, 'so are the rows\' rules')

  // Signed by an insider, forging only what the import recomputes or marks: it goes in, corrected.
  const insider = copyOf(genuine)
  const withDevice = serialWithDevice(insider)
  withDevice.active_devices = 0
  for (const day of rowsOf(insider, 'usage_daily')) day.quantity = 1_000_000
  for (const hour of rowsOf(insider, 'usage_client_hourly')) hour.events = 999
  const forgedEntry = { ...first(insider, 'audit_log'), id: randomId('aud'), actor_id: 'env:ADMIN_API_KEY', actor_role: 'ADMIN', action: 'serial.revoked', target_type: 'serial', target_id: withDevice.id, changes: { reason: 'forged' } }
  addRow(insider, 'audit_log', forgedEntry, ORDER)
  await writeExport(forged, insider, KEY)
  const result = await importClient(target.deps.database.db, target.deps.config, forged, { signingKey: KEY })
  t.equal(result.header.clientId, seeded.client.id)
  const db = target.deps.database.db
  const [counter] = await queryRows<{ n: number }>(db, sql`select active_devices as n from serials where id = ${withDevice.id}`)
  t.equal(counter!.n, 1, 'active_devices recomputed from the imported devices (the file said 0)')
  const daily = await queryRows<{ q: number }>(db, sql`select quantity::int as q from usage_daily where client_id = ${seeded.client.id} order by serial_id`)
  t.same(daily.map((d) => d.q), [3, 3], 'usage rollups summed again from the imported events (the file said 1,000,000)')
  const [hourly] = await queryRows<{ e: number }>(db, sql`select sum(events)::int as e from usage_client_hourly where client_id = ${seeded.client.id}`)
  t.equal(hourly!.e, 2)
  t.match(await verifyAuditChain(db), { valid: true, firstBrokenId: null }, 'the audit chain verifies after the import')
  const [entry] = await queryRows<{ actor_id: string, changes: any }>(db, sql`select actor_id, changes from audit_log where changes->'importedFrom'->>'id' = ${forgedEntry.id}`)
  t.equal(entry!.actor_id, 'system', 'the forged entry is not the ADMIN key\'s entry on this deployment: it is the import\'s')
  t.match(entry!.changes, { reason: 'forged', importedFrom: { id: forgedEntry.id, actorId: 'env:ADMIN_API_KEY', export: /^[0-9a-f]{64}$/ } }, 'and marked as imported, naming the file')
  const [imported] = await queryRows<{ changes: any }>(db, sql`select changes from audit_log where action = 'client.imported' and target_id = ${seeded.client.id}`)
  t.match(imported!.changes, { signedWith: 'key', mac: /^[0-9a-f]{64}$/, activeDevicesRecomputed: 1, auditEntriesImported: rowsOf(insider, 'audit_log').length })
  const [others] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from serials where client_id = ${other.clientId}`)
  t.equal(others!.n, 1, 'client B still has exactly its own serial')
})

t.test('bounds: /dev/zero, a line without end, a file over the limit and a gzip bomb end at once', async (t) => {
  const dir = tempDir(t)
  const url = await freshDatabase(t)
  const app = await build(t, { background: false, env: { ...(url ? { DATABASE_URL: url } : {}) } })
  const { db } = app.deps.database
  const cfg = app.deps.config
  const timed = async (what: string, run: () => Promise<unknown>, expect: RegExp) => {
    const started = performance.now()
    await t.rejects(run(), expect, what)
    const ms = performance.now() - started
    t.ok(ms < 10_000, `${what}: ended in ${Math.round(ms)} ms`)
  }
  await timed('import --in /dev/zero', () => importClient(db, cfg, '/dev/zero', { signingKey: KEY }), /not a regular file/)

  // 100 MB of metadata on one line, behind a genuine header.
  const client = await createClient(app)
  const file = join(dir, 'a.ndjson')
  await exportClient(db, cfg, client.id, file, { signingKey: KEY })
  const header = readFileSync(file, 'utf8').split('\n')[0]!
  const huge = join(dir, 'huge.ndjson')
  writeFileSync(huge, `${header}\n{"t":"clients","r":{"metadata":"`)
  const chunk = Buffer.alloc(4 * 1024 * 1024, 'x')
  for (let i = 0; i < 25; i++) writeFileSync(huge, chunk, { flag: 'a' })
  await timed('100 MB of metadata on one line', () => importClient(db, cfg, huge, { signingKey: KEY }), /a line is longer than 1 MiB/)
  await timed('the genuine file over --max-bytes', () => importClient(db, cfg, file, { signingKey: KEY, maxBytes: 1024 }), /larger than 1 KiB \(the limit; see --max-bytes\)/)
  const bad = join(dir, 'bad.ndjson')
  writeFileSync(bad, Buffer.concat([Buffer.from(`${header}\n{"t":"clients","r":{"name":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}}\n')]))
  await timed('bytes that are not UTF-8', () => importClient(db, cfg, bad, { signingKey: KEY }), /not UTF-8/)
  const { restoreDatabase } = await import('../../src/domain/operations/backup.ts')
  const { gzipSync } = await import('node:zlib')
  const bomb = join(dir, 'bomb.gz')
  writeFileSync(bomb, gzipSync(Buffer.alloc(200 * 1024 * 1024), { level: 9 }))
  await timed('restore of a gzip bomb (200 MiB of zeros in 200 KB)', () => restoreDatabase(db, cfg, bomb), /inflates more than 100 times: a compression bomb/)
  await timed('restore --in /dev/zero', () => restoreDatabase(db, cfg, '/dev/zero'), /incorrect header|not a Serials backup/)

  // Through the CLI: one line, exit code 1, before any database is opened.
  const log: string[] = []
  const io = { out: (l: string) => log.push(l), err: (l: string) => log.push(l) }
  const env = { NODE_ENV: 'test', DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'silent', EXPORT_KEY: KEY, ...(url ? { DATABASE_URL: url } : {}) }
  const { runCli } = await import('../../src/main/cli.ts')
  t.equal(await runCli(['verify-export', '--in', '/dev/zero', '--key-env', 'EXPORT_KEY'], env, io), 1)
  t.match(log.pop(), /^verify-export: \/dev\/zero is not a regular file/)
  t.equal(await runCli(['import', '--in', huge, '--key-env', 'EXPORT_KEY'], env, io), 1)
  t.match(log.pop(), /^import: a line is longer than 1 MiB/)
  t.equal(await runCli(['restore', '--in', bomb], env, io), 1)
  t.match(log.pop(), /^restore: .*compression bomb/)
  t.equal(await runCli(['verify-export', '--in', file, '--key-env', 'EXPORT_KEY'], env, io), 0)
  t.match(log.pop(), /^signature verified \(HMAC-SHA256, signing key\): client \S+ \(cli_\w+\) exported .*every row within the service's rules, sha256 [0-9a-f]{64}$/)
  t.equal(await runCli(['verify-export', '--in', file, '--key-env', 'EXPORT_KEY', '--max-bytes', '1KiB'], env, io), 1)
  t.match(log.pop(), /larger than 1 KiB/)
})
