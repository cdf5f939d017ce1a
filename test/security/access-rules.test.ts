// The tenant scope and role guards of src/kernel/access.ts on their own, for every kind of actor.
import t from 'tap'
import { ANONYMOUS, canSeeClient, canSeeClientOf, clientScope, NO_CLIENT, requireRole, requireWriter, type Actor, type Role } from '../../src/kernel/access.ts'

const actor = (role: Role | null, clientId: string | null = null): Actor => ({ kind: 'apiKey', id: 'key_test', role, clientId, keyId: null, expiresAt: null })
const admin = actor('ADMIN')
const auditor = actor('AUDITOR')
const manager = actor('MANAGER', 'cli_a')
const clientless = actor('MANAGER')

t.test('clientScope: every client, the own client, or none', async (t) => {
  t.equal(clientScope(admin), null)
  t.equal(clientScope(auditor), null)
  t.equal(clientScope(manager), 'cli_a')
  t.equal(clientScope(clientless), NO_CLIENT, 'a MANAGER without a client sees nothing')
  t.equal(clientScope(ANONYMOUS), NO_CLIENT, 'an anonymous actor sees nothing')
})

t.test('canSeeClient and canSeeClientOf (null = a vendor-wide object)', async (t) => {
  for (const a of [admin, auditor]) {
    t.ok(canSeeClient(a, 'cli_b'))
    t.ok(canSeeClientOf(a, null))
  }
  t.ok(canSeeClient(manager, 'cli_a'))
  t.notOk(canSeeClient(manager, 'cli_b'))
  t.notOk(canSeeClientOf(manager, null), 'a MANAGER never sees vendor-wide objects')
  t.notOk(canSeeClient(clientless, NO_CLIENT), 'the sentinel is no client')
  t.notOk(canSeeClient(ANONYMOUS, 'cli_a'))
  t.notOk(canSeeClientOf(ANONYMOUS, null))
})

t.test('requireRole and requireWriter: FORBIDDEN with the rule in the message', async (t) => {
  t.doesNotThrow(() => requireRole(auditor, ['ADMIN', 'AUDITOR'], 'verify the audit log'))
  t.throws(() => requireRole(manager, ['ADMIN', 'AUDITOR'], 'verify the audit log'), { code: 'FORBIDDEN', message: 'only ADMIN and AUDITOR may verify the audit log' })
  t.throws(() => requireRole(ANONYMOUS, ['ADMIN'], 'change policies'), { code: 'FORBIDDEN', message: 'only ADMIN may change policies' })
  t.doesNotThrow(() => requireWriter(manager, 'change serials'))
  t.throws(() => requireWriter(auditor, 'change serials'), { code: 'FORBIDDEN', message: 'this role may not change serials' })
  t.throws(() => requireWriter(ANONYMOUS, 'change devices'), { code: 'FORBIDDEN' })
})
