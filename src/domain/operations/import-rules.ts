// What an imported row may hold, table by table: the API's own rules for every field a caller can
// set (CLIENT_FIELDS, SERIAL_FIELDS, …, the same zod schemas the services parse input with), the
// service's own formats for what it makes itself (ids, serial numbers, webhook secrets, times), the
// exported client for every client reference, and nothing else (an unknown column is refused).
// Values are checked as they are stored: a schema that trims or upper-cases must give the value
// back unchanged, since the service never stores the other form.
//
// Pure: no I/O. What needs the database (ids taken here, references to the file's serials, device
// counts against limits, webhook hosts' addresses) is checked by importClient.
import { z } from 'zod'
import { ROLES } from '../../kernel/access.ts'
import { MAX_DATE, MIN_DATE, valueTooDeep } from '../../kernel/input.ts'
import { CLIENT_FIELDS } from '../clients/client-service.ts'
import { POLICY_FIELDS } from '../policies/policy-service.ts'
import { SERIAL_FIELDS } from '../serials/serial-service.ts'
import { normaliseSerialNumber } from '../serials/serial-number.ts'
import { deviceIdSchema, deviceInfoSchema } from '../serials/serial-state.ts'
import { USAGE_FIELDS } from '../usage/usage-service.ts'
import { VALIDATION_CODES } from '../validation/validation-rules.ts'
import { WEBHOOK_FIELDS } from '../webhooks/webhook-service.ts'

/** The one client an export may hold. */
export interface ImportScope { clientId: string, clientNumber: string }

/** Largest `changes` of an imported audit entry, as JSON (an entry moved several times nests its origins). */
export const MAX_AUDIT_CHANGES = 64 * 1024
/** Deepest `changes` of an imported audit entry (a serial's metadata inside, plus the origins of earlier moves). */
export const MAX_AUDIT_DEPTH = 64

const INT32 = 2_147_483_647
const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
const MINUTE_MS = 60_000

function sameJson (a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * A value `schema` accepts as it is (the API's rule for the field, applied to the stored value).
 * null only where `nullable`; a missing column is refused.
 */
function stored (schema: z.ZodType, options: { nullable?: boolean } = {}) {
  return z.unknown().superRefine((value, ctx) => {
    if (value === undefined) { ctx.addIssue({ code: 'custom', message: 'is missing' }); return }
    if (value === null) {
      if (!options.nullable) ctx.addIssue({ code: 'custom', message: 'must not be null' })
      return
    }
    const result = schema.safeParse(value)
    if (!result.success) {
      for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path })
      return
    }
    if (!sameJson(result.data, value)) ctx.addIssue({ code: 'custom', message: 'is not in the form the service stores' })
  })
}

const nullable = (schema: z.ZodType) => stored(schema, { nullable: true })
const id = (prefix: string) => z.string().regex(new RegExp(`^${prefix}_[0-9A-Z]{26}$`), `must be an id ${prefix}_ followed by 26 characters`)
const bool = z.boolean()
const int32 = z.number().int().min(0).max(INT32)
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const printable = (max: number) => z.string().min(1).max(max).regex(/^[\x20-\x7E]+$/, 'must be printable ASCII')

/**
 * A time as PostgreSQL's to_jsonb writes a timestamptz (microseconds kept: the text is stored as
 * read), between the dates every input accepts; `unitMs` for the rollups' hour, day and minute.
 */
function time (unitMs?: number) {
  return z.string().max(40)
    .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}(:\d{2})?)$/, 'must be an ISO-8601 date and time')
    .superRefine((text, ctx) => {
      const ms = Date.parse(text)
      if (Number.isNaN(ms) || ms < MIN_DATE.getTime() || ms > MAX_DATE.getTime()) {
        ctx.addIssue({ code: 'custom', message: 'must be a date between 1970-01-01 and 9999-12-31' })
      } else if (unitMs !== undefined && (ms % unitMs !== 0 || /\.\d*[1-9]/.test(text))) {
        ctx.addIssue({ code: 'custom', message: `must be the start of a${unitMs === HOUR_MS ? 'n hour' : unitMs === DAY_MS ? ' day' : ' minute'} (UTC)` })
      }
    })
}

const number = z.string().refine((v) => normaliseSerialNumber(v) === v, 'is not a serial number (25 characters with a valid check character)')
const deviceInfo = z.string().max(8192).superRefine((text, ctx) => {
  let value: unknown
  try { value = JSON.parse(text) } catch { ctx.addIssue({ code: 'custom', message: 'is not JSON' }); return }
  const result = deviceInfoSchema.safeParse(value)
  if (!result.success) { for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message }); return }
  if (JSON.stringify(value) !== text) ctx.addIssue({ code: 'custom', message: 'is not in the form the service stores' })
})
// Audit changes have bounds of their own: they nest a serial's metadata and the origins of earlier moves.
const auditChanges = z.record(z.string(), z.unknown())
  .refine((m) => !valueTooDeep(m, MAX_AUDIT_DEPTH), { message: `must nest at most ${MAX_AUDIT_DEPTH} levels`, abort: true })
  .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_AUDIT_CHANGES, `must be at most ${MAX_AUDIT_CHANGES / 1024} KiB as JSON`)

/** One schema per exported table, for the rows of `scope`'s client. */
export function rowRules (scope: ImportScope): Record<string, z.ZodType<Record<string, unknown>>> {
  const ofClient = z.literal(scope.clientId, { error: 'names another client: an export holds one client\'s rows' })
  const serialId = id('ser')
  const ts = stored(time())
  const tsOrNull = nullable(time())
  const code = z.enum(VALIDATION_CODES)
  return {
    clients: z.strictObject({
      id: z.literal(scope.clientId, { error: 'is not the client the header names' }),
      client_number: z.literal(scope.clientNumber, { error: 'is not the client number the header names' }).and(stored(CLIENT_FIELDS.clientNumber)),
      name: stored(CLIENT_FIELDS.name),
      contact_email: stored(CLIENT_FIELDS.contactEmail),
      status: stored(z.enum(['ACTIVE', 'SUSPENDED'])),
      quota_per_minute: nullable(CLIENT_FIELDS.quotaPerMinute),
      created_at: ts,
      updated_at: ts
    }),
    policies: z.strictObject({
      id: stored(id('pol')),
      name: stored(POLICY_FIELDS.name),
      max_devices: stored(POLICY_FIELDS.maxDevices),
      duration_days: nullable(POLICY_FIELDS.durationDays),
      floating: stored(POLICY_FIELDS.floating),
      heartbeat_seconds: stored(POLICY_FIELDS.heartbeatSeconds),
      heartbeat_grace_seconds: stored(POLICY_FIELDS.heartbeatGraceSeconds),
      max_activations_per_day: nullable(POLICY_FIELDS.maxActivationsPerDay),
      offline_ttl_days: nullable(POLICY_FIELDS.offlineTtlDays),
      entitlements: stored(POLICY_FIELDS.entitlements),
      created_at: ts,
      updated_at: ts
    }),
    serials: z.strictObject({
      id: stored(serialId),
      client_id: ofClient,
      number: stored(number),
      number_tail: stored(z.string().length(5)),
      max_usage_count: stored(SERIAL_FIELDS.maxDevices),
      // Recomputed from the imported devices; only its type is checked here.
      active_devices: stored(int32),
      expires_at: tsOrNull,
      is_demo: stored(bool),
      metadata: stored(SERIAL_FIELDS.metadata),
      status: stored(z.enum(['ACTIVE', 'SUSPENDED', 'REVOKED'])),
      revoked_at: tsOrNull,
      revoke_reason: nullable(SERIAL_FIELDS.revokeReason),
      batch_id: nullable(id('bat')),
      created_at: ts,
      updated_at: ts,
      policy_id: nullable(id('pol')),
      inherits_max_devices: stored(bool),
      inherits_duration: stored(bool),
      expiring_notified_at: tsOrNull,
      expired_notified_at: tsOrNull,
      limit_reached_at: tsOrNull
    }).superRefine((row, ctx) => {
      if (typeof row.number === 'string' && row.number_tail !== row.number.slice(20)) ctx.addIssue({ code: 'custom', path: ['number_tail'], message: 'is not the end of the serial number' })
      const revoked = row.status === 'REVOKED'
      if (revoked !== (row.revoked_at !== null) || revoked !== (row.revoke_reason !== null)) {
        ctx.addIssue({ code: 'custom', path: ['revoked_at'], message: 'a revoked serial (and only one) has a revocation time and reason' })
      }
      if ((row.inherits_max_devices === true || row.inherits_duration === true) && row.policy_id === null) {
        ctx.addIssue({ code: 'custom', path: ['policy_id'], message: 'a serial that inherits from its policy has one' })
      }
    }),
    devices: z.strictObject({
      id: stored(id('dev')),
      serial_id: stored(serialId),
      device_id: stored(deviceIdSchema),
      device_info: nullable(deviceInfo),
      active: stored(bool),
      first_seen_at: ts,
      last_seen_at: ts,
      deactivated_at: tsOrNull,
      validation_count: stored(count),
      lease_expires_at: tsOrNull
    }),
    device_activations: z.strictObject({
      serial_id: stored(serialId),
      device_id: stored(deviceIdSchema),
      activated_at: ts
    }),
    usage_events: z.strictObject({
      id: stored(id('use')),
      serial_id: stored(serialId),
      client_id: ofClient,
      device_id: stored(deviceIdSchema),
      kind: stored(z.enum(['USAGE'])),
      quantity: stored(USAGE_FIELDS.quantity),
      feature: nullable(USAGE_FIELDS.feature),
      ip: nullable(printable(64)),
      recorded_at: ts
    }),
    validation_stats: z.strictObject({ serial_id: stored(serialId), client_id: ofClient, hour: stored(time(HOUR_MS)), code: stored(code), count: stored(int32) }),
    usage_daily: z.strictObject({ serial_id: stored(serialId), client_id: ofClient, day: stored(time(DAY_MS)), events: stored(int32), quantity: stored(count) }),
    usage_client_hourly: z.strictObject({ client_id: ofClient, hour: stored(time(HOUR_MS)), events: stored(int32), quantity: stored(count) }),
    usage_device_days: z.strictObject({ serial_id: stored(serialId), client_id: ofClient, day: stored(time(DAY_MS)), device_id: stored(deviceIdSchema) }),
    validation_client_hourly: z.strictObject({ client_id: ofClient, hour: stored(time(HOUR_MS)), code: stored(code), count: stored(int32) }),
    validation_client_minutely: z.strictObject({ client_id: ofClient, minute: stored(time(MINUTE_MS)), code: stored(code), count: stored(int32) }),
    webhooks: z.strictObject({
      id: stored(id('whk')),
      // A webhook without a client receives every client's events: never part of one client's export.
      client_id: ofClient,
      url: stored(WEBHOOK_FIELDS.url),
      events: stored(WEBHOOK_FIELDS.events),
      secret: stored(WEBHOOK_FIELDS.secret),
      enabled: stored(bool),
      consecutive_failures: stored(int32),
      disabled_at: tsOrNull,
      created_at: ts,
      deleted_at: tsOrNull
    }),
    audit_log: z.strictObject({
      id: stored(id('aud')),
      actor_id: stored(printable(255)),
      actor_role: stored(z.enum([...ROLES, 'ANONYMOUS'])),
      action: stored(z.string().max(64).regex(/^[a-z][a-z_]*(\.[a-z_]+)+$/, 'must be resource.verb')),
      target_type: stored(z.string().regex(/^[a-z][a-z_]{0,31}$/, 'must be a resource name')),
      target_id: stored(printable(255)),
      client_id: ofClient,
      changes: stored(auditChanges),
      ip: nullable(printable(64)),
      request_id: nullable(printable(255)),
      created_at: ts
    })
  }
}

/** The first problem of `row` as one line naming the field (never its value), or null. */
export function rowProblem (schema: z.ZodType, row: unknown): string | null {
  const result = schema.safeParse(row)
  if (result.success) return null
  const issue = result.error.issues[0]!
  if (issue.code === 'unrecognized_keys') return `has unknown columns ${issue.keys.join(', ')}`
  return `${issue.path.length > 0 ? issue.path.join('.') : 'the row'} ${issue.message.replace(/^Invalid input: /, '')}`
}
