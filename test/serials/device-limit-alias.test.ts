// One word for the device limit: maxDevices. GraphQL keeps maxUsageCount as a deprecated alias for
// a release, in inputs and on Serial; both given with different values is refused.
import t from 'tap'
import { build, createClient, gql, gqlOk, restValidate } from '../helper.ts'

const CREATE = 'mutation ($input: CreateSerialInput!) { createSerial(input: $input) { serialNumber serial { id maxDevices maxUsageCount } } }'

t.test('maxDevices and its deprecated alias', async (t) => {
  const app = await build(t)
  const client = await createClient(app)

  const byNew = (await gqlOk(app, CREATE, { input: { clientId: client.id, maxDevices: 3 } })).createSerial
  t.same(byNew.serial.maxDevices, 3)
  t.same(byNew.serial.maxUsageCount, 3, 'the alias reads the same number')

  const byOld = (await gqlOk(app, CREATE, { input: { clientId: client.id, maxUsageCount: 2 } })).createSerial
  t.same(byOld.serial.maxDevices, 2, 'the deprecated input still sets the limit')

  const both = (await gqlOk(app, CREATE, { input: { clientId: client.id, maxDevices: 4, maxUsageCount: 4 } })).createSerial
  t.same(both.serial.maxDevices, 4, 'both, agreeing')

  const clash = await gql(app, CREATE, { input: { clientId: client.id, maxDevices: 4, maxUsageCount: 5 } })
  t.equal(clash.errors?.[0]?.extensions?.code, 'VALIDATION_ERROR', 'both, differing: refused')
  t.match(clash.errors?.[0]?.extensions?.errors, [{ field: 'maxDevices' }])

  const updated = (await gqlOk(app, 'mutation ($input: UpdateSerialInput!) { updateSerial(input: $input) { maxDevices } }', { input: { id: byOld.serial.id, maxDevices: 1 } })).updateSerial
  t.equal(updated.maxDevices, 1)
  const refused = await gql(app, 'mutation ($input: UpdateSerialInput!) { updateSerial(input: $input) { maxDevices } }', { input: { id: byOld.serial.id, maxDevices: 1, maxUsageCount: 9 } })
  t.equal(refused.errors?.[0]?.extensions?.code, 'VALIDATION_ERROR')

  // The limit is the one validation enforces.
  t.equal((await restValidate(app, { serialNumber: byOld.serialNumber, deviceId: 'a' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: byOld.serialNumber, deviceId: 'b' })).body.code, 'TOO_MANY_DEVICES')

  const deprecated = (await gqlOk(app, '{ __type(name: "Serial") { fields(includeDeprecated: true) { name isDeprecated } } }')).__type.fields
  t.match(deprecated.filter((f: { name: string }) => f.name === 'maxUsageCount' || f.name === 'maxDevices'), [{ name: 'maxDevices', isDeprecated: false }, { name: 'maxUsageCount', isDeprecated: true }])
})
