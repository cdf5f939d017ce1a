// Every validation code, each reached through GraphQL and through REST.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { generateSerialNumber, formatSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { build, createClient, createSerial, gqlOk, restValidate, VALIDATE } from '../helper.ts'

type Via = (app: FastifyInstance, input: Record<string, unknown>) => Promise<Record<string, any>>
const viaGraphql: Via = async (app, input) => (await gqlOk(app, VALIDATE, { input }, null)).validateSerial
const viaRest: Via = async (app, input) => {
  const res = await restValidate(app, input)
  if (res.status !== 200) throw new Error(`REST validate answered ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body
}

for (const [name, validate] of [['GraphQL', viaGraphql], ['REST', viaRest]] as const) {
  t.test(`validation codes via ${name}`, async (t) => {
    const app = await build(t)
    const client = await createClient(app)

    const malformed = await validate(app, { serialNumber: 'NOT-A-SERIAL', deviceId: 'd1' })
    t.match(malformed, { valid: false, code: 'INVALID_FORMAT', remainingDevices: null, isDemo: null })

    const unknown = await validate(app, { serialNumber: formatSerialNumber(generateSerialNumber()), deviceId: 'd1' })
    t.match(unknown, { valid: false, code: 'NOT_FOUND' })

    const good = await createSerial(app, client.id, { maxUsageCount: 2 })
    const valid = await validate(app, { serialNumber: good.serialNumber, deviceId: 'd1' })
    t.match(valid, { valid: true, code: 'VALID', remainingDevices: 1, isDemo: false, expiresAt: null })
    t.ok(Math.abs(Date.parse(valid.serverTime) - Date.now()) < 60_000, 'serverTime is now')
    const lowercase = await validate(app, { serialNumber: good.serialNumber.toLowerCase().replace(/-/g, ' '), deviceId: 'd1' })
    t.match(lowercase, { code: 'VALID' }, 'normalised input finds the same serial')

    await validate(app, { serialNumber: good.serialNumber, deviceId: 'd2' })
    const full = await validate(app, { serialNumber: good.serialNumber, deviceId: 'd3' })
    t.match(full, { valid: false, code: 'TOO_MANY_DEVICES', remainingDevices: 0 })
    t.match(await validate(app, { serialNumber: good.serialNumber, deviceId: 'd1' }), { code: 'VALID' }, 'known devices keep working')

    const expired = await createSerial(app, client.id, { expiresAt: new Date(Date.now() + 1500).toISOString() })
    t.match(await validate(app, { serialNumber: expired.serialNumber, deviceId: 'd1' }), { code: 'VALID' })
    await new Promise((resolve) => setTimeout(resolve, 1600))
    t.match(await validate(app, { serialNumber: expired.serialNumber, deviceId: 'd1' }), { valid: false, code: 'EXPIRED' }, 'expiry applies to cached serials too')

    const suspended = await createSerial(app, client.id)
    await validate(app, { serialNumber: suspended.serialNumber, deviceId: 'd1' })
    await gqlOk(app, 'mutation ($input: SuspendSerialInput!) { suspendSerial(input: $input) { status } }', { input: { id: suspended.id } })
    t.match(await validate(app, { serialNumber: suspended.serialNumber, deviceId: 'd1' }), { valid: false, code: 'SUSPENDED' })
    await gqlOk(app, 'mutation ($input: ReinstateSerialInput!) { reinstateSerial(input: $input) { status } }', { input: { id: suspended.id } })
    t.match(await validate(app, { serialNumber: suspended.serialNumber, deviceId: 'd1' }), { code: 'VALID' }, 'reinstated')

    const revoked = await createSerial(app, client.id)
    await validate(app, { serialNumber: revoked.serialNumber, deviceId: 'd1' })
    await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: revoked.id, reason: 'refunded' } })
    t.match(await validate(app, { serialNumber: revoked.serialNumber, deviceId: 'd1' }), { valid: false, code: 'REVOKED' })

    const owner = await createClient(app)
    const ownerSerial = await createSerial(app, owner.id)
    t.match(await validate(app, { serialNumber: ownerSerial.serialNumber, deviceId: 'd1' }), { code: 'VALID' })
    await gqlOk(app, 'mutation ($input: SuspendClientInput!) { suspendClient(input: $input) { status } }', { input: { id: owner.id } })
    t.match(await validate(app, { serialNumber: ownerSerial.serialNumber, deviceId: 'd1' }), { valid: false, code: 'CLIENT_SUSPENDED' })
  })
}

t.test('code order: REVOKED wins over CLIENT_SUSPENDED, SUSPENDED and EXPIRED', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { expiresAt: new Date(Date.now() + 1000).toISOString() })
  await gqlOk(app, 'mutation ($input: SuspendSerialInput!) { suspendSerial(input: $input) { status } }', { input: { id: serial.id } })
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.match(await viaRest(app, { serialNumber: serial.serialNumber, deviceId: 'd' }), { code: 'SUSPENDED' }, 'SUSPENDED before EXPIRED')
  await gqlOk(app, 'mutation ($input: SuspendClientInput!) { suspendClient(input: $input) { status } }', { input: { id: client.id } })
  t.match(await viaRest(app, { serialNumber: serial.serialNumber, deviceId: 'd' }), { code: 'CLIENT_SUSPENDED' }, 'CLIENT_SUSPENDED before SUSPENDED')
  await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: serial.id, reason: 'fraud' } })
  t.match(await viaRest(app, { serialNumber: serial.serialNumber, deviceId: 'd' }), { code: 'REVOKED' }, 'REVOKED first')
})
