// Always on embedded backends (PGlite + in-process), whatever the environment: the quick start.
import t from 'tap'
import { build, createClient, createSerial, gqlOk, restValidate } from '../helper.ts'

t.test('quick start: create, validate, record usage on PGlite and in-process cache and bus', async (t) => {
  const app = await build(t, { embedded: true })
  t.equal(app.deps.database.kind, 'pglite')
  t.equal(app.deps.cache.kind, 'memory')
  t.equal(app.deps.bus.kind, 'memory')

  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })
  t.match(serial.serialNumber, /^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$/)

  const first = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'laptop-1' })
  t.equal(first.status, 200)
  t.match(first.body, { valid: true, code: 'VALID', remainingDevices: 0 })
  const other = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'laptop-2' })
  t.match(other.body, { valid: false, code: 'TOO_MANY_DEVICES' })

  const usage = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'laptop-1', quantity: 3, feature: 'export' } })
  t.equal(usage.statusCode, 201)
  t.match(usage.json(), { recorded: true, code: 'VALID', usageEvent: { quantity: 3, feature: 'export', serialId: serial.id } })

  const data = await gqlOk(app, 'query ($id: ID!) { serial(id: $id) { id activeDevices status maskedNumber client { clientNumber } } }', { id: serial.id })
  t.match(data.serial, { id: serial.id, activeDevices: 1, status: 'ACTIVE', maskedNumber: `*****-*****-*****-*****-${serial.serialNumber.slice(-5)}`, client: { clientNumber: client.clientNumber } })
})
