// Pure rules as tables: validation order, new-device checks, lease arithmetic, TTL cap, entitlements.
import t from 'tap'
import { entitlementsSchema, policyExpiry } from '../../src/domain/policies/policy-rules.ts'
import type { SerialState } from '../../src/domain/cached-state.ts'
import { checkNewDevice, checkSerial, VALIDATION_CODES } from '../../src/domain/validation/validation-rules.ts'
import { capTtlDays, isLapsed, leaseUntil, SWEEP_INTERVAL_MS } from '../../src/domain/policies/lease-rules.ts'

const NOW = Date.UTC(2026, 0, 1)
const serial = (over: Partial<SerialState> = {}): SerialState => ({
  id: 'ser_1', clientId: 'cli_1', clientNumber: 'C-1', status: 'ACTIVE', expiresAt: null, maxDevices: 2, activeDevices: 0, isDemo: false, policyId: null, ...over
})

t.test('the contract order of codes', async (t) => {
  t.same(VALIDATION_CODES.slice(1), ['INVALID_FORMAT', 'NOT_FOUND', 'REVOKED', 'CLIENT_SUSPENDED', 'SUSPENDED', 'EXPIRED', 'TOO_MANY_DEVICES', 'TOO_MANY_ACTIVATIONS'])
})

t.test('checkNewDevice: device limit first, then the rolling cap', async (t) => {
  const cases: Array<[Pick<SerialState, 'activeDevices' | 'maxDevices'>, number, number | null, string | null]> = [
    [{ activeDevices: 0, maxDevices: 1 }, 0, null, null],
    [{ activeDevices: 1, maxDevices: 1 }, 0, null, 'TOO_MANY_DEVICES'],
    [{ activeDevices: 1, maxDevices: 1 }, 9, 2, 'TOO_MANY_DEVICES'],
    [{ activeDevices: 0, maxDevices: 5 }, 1, 2, null],
    [{ activeDevices: 0, maxDevices: 5 }, 2, 2, 'TOO_MANY_ACTIVATIONS'],
    [{ activeDevices: 0, maxDevices: 5 }, 1000, null, null]
  ]
  for (const [s, n, cap, want] of cases) t.equal(checkNewDevice(s, n, cap), want, `${JSON.stringify(s)} n=${n} cap=${cap}`)
})

t.test('checkSerial: first failure wins', async (t) => {
  t.equal(checkSerial(undefined, 'ACTIVE', NOW), 'NOT_FOUND')
  t.equal(checkSerial(serial({ status: 'REVOKED', expiresAt: NOW - 1 }), 'SUSPENDED', NOW), 'REVOKED')
  t.equal(checkSerial(serial({ status: 'SUSPENDED' }), 'SUSPENDED', NOW), 'CLIENT_SUSPENDED')
  t.equal(checkSerial(serial({ status: 'SUSPENDED', expiresAt: NOW }), 'ACTIVE', NOW), 'SUSPENDED')
  t.equal(checkSerial(serial({ expiresAt: NOW }), 'ACTIVE', NOW), 'EXPIRED')
  t.equal(checkSerial(serial({ expiresAt: NOW + 1 }), 'ACTIVE', NOW), null)
})

t.test('lease arithmetic', async (t) => {
  const floating = { floating: true, heartbeatSeconds: 60, heartbeatGraceSeconds: 30 }
  t.equal(leaseUntil(floating, NOW), NOW + 90_000)
  t.equal(leaseUntil({ ...floating, heartbeatGraceSeconds: 0 }, NOW), NOW + 60_000)
  t.equal(leaseUntil({ ...floating, floating: false }, NOW), null, 'node-locked: no lease')
  t.equal(leaseUntil(null, NOW), null, 'no policy: no lease')
  const cases: Array<[number | null, boolean]> = [[null, false], [NOW + 1, false], [NOW, true], [NOW - 1, true]]
  for (const [lease, want] of cases) t.equal(isLapsed(lease, NOW), want, `lease ${lease === null ? 'null' : lease - NOW}`)
  t.ok(SWEEP_INTERVAL_MS <= 5000, 'the sweep meets the smallest heartbeatSeconds')
})

t.test('certificate TTL cap and policy expiry', async (t) => {
  t.equal(capTtlDays(30, null), 30)
  t.equal(capTtlDays(30, 7), 7)
  t.equal(capTtlDays(3, 7), 3)
  t.equal(policyExpiry(new Date(NOW), null), null)
  t.equal(policyExpiry(new Date(NOW), 2)!.getTime(), NOW + 2 * 86_400_000)
})

t.test('entitlement codes', async (t) => {
  t.same(entitlementsSchema.parse(['b', 'A', 'a', 'x.y-z_1']), ['A', 'B', 'X.Y-Z_1'])
  for (const bad of ['', 'a b', 'é', 'x'.repeat(65), 'a/b']) t.notOk(entitlementsSchema.safeParse([bad]).success, JSON.stringify(bad))
  t.ok(entitlementsSchema.safeParse(['X'.repeat(64)]).success)
})
