import t from 'tap'
import { build, createClient, createSerial, gql, gqlOk, restValidate } from '../helper.ts'

const RELEASE = 'mutation ($input: ReleaseDeviceInput!) { releaseDevice(input: $input) { deviceId active deactivatedAt } }'
const DEACTIVATE = 'mutation ($input: DeactivateDeviceInput!) { deactivateDevice(input: $input) { deviceId active } }'
const DEVICES = 'query ($id: ID!) { serial(id: $id) { activeDevices devices(first: 10) { edges { node { deviceId active deviceInfo deactivatedAt } } } } }'

t.test('releasing a device frees its slot; a released device may take one again later', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })
  const validate = async (deviceId: string) => (await restValidate(app, { serialNumber: serial.serialNumber, deviceId, deviceInfo: { os: deviceId } })).body.code
  t.equal(await validate('old-pc'), 'VALID')
  t.equal(await validate('new-pc'), 'TOO_MANY_DEVICES')

  const released = await gqlOk(app, RELEASE, { input: { serialNumber: serial.serialNumber, deviceId: 'old-pc' } }, null)
  t.match(released.releaseDevice, { deviceId: 'old-pc', active: false, deactivatedAt: String })
  const again = await gqlOk(app, RELEASE, { input: { serialNumber: serial.serialNumber, deviceId: 'old-pc' } }, null)
  t.equal(again.releaseDevice.active, false, 'releasing twice is harmless')

  t.equal(await validate('new-pc'), 'VALID', 'the freed slot goes to a new device')
  t.equal(await validate('old-pc'), 'TOO_MANY_DEVICES', 'the released device no longer holds a slot')

  const staff = await gqlOk(app, DEACTIVATE, { input: { serialId: serial.id, deviceId: 'new-pc' } })
  t.match(staff.deactivateDevice, { deviceId: 'new-pc', active: false })
  t.equal(await validate('old-pc'), 'VALID', 're-activation of a released device')

  const list = await gqlOk(app, DEVICES, { id: serial.id })
  t.equal(list.serial.activeDevices, 1)
  const devices = Object.fromEntries(list.serial.devices.edges.map((e: { node: { deviceId: string } }) => [e.node.deviceId, e.node]))
  t.match(devices['old-pc'], { active: true, deactivatedAt: null, deviceInfo: { os: 'old-pc' } })
  t.match(devices['new-pc'], { active: false })

  const rest = await app.inject({ method: 'POST', url: '/api/v1/serials/release', payload: { serialNumber: serial.serialNumber, deviceId: 'old-pc' } })
  t.equal(rest.statusCode, 200)
  t.match(rest.json(), { deviceId: 'old-pc', active: false })
})

t.test('release errors: unknown device, unknown or malformed serial', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const unknownDevice = await gql(app, RELEASE, { input: { serialNumber: serial.serialNumber, deviceId: 'never-seen' } }, null)
  t.match(unknownDevice.errors?.[0]?.extensions, { code: 'NOT_FOUND' })
  const malformed = await gql(app, RELEASE, { input: { serialNumber: 'bad', deviceId: 'x' } }, null)
  t.match(malformed.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'serialNumber' }] })
  const auditor = await gql(app, DEACTIVATE, { input: { serialId: serial.id, deviceId: 'x' } }, null)
  t.match(auditor.errors?.[0]?.extensions, { code: 'AUTHENTICATION_ERROR' }, 'deactivateDevice needs staff credentials')
})
