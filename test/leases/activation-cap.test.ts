// maxActivationsPerDay: new-device activations of one serial in a rolling 24 h, releases do not
// reset it, and it holds under concurrency; device.limit_reached at most once per serial per hour.
import t from 'tap'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { queryRows } from '../../src/infra/database.ts'
import { buildPair, build, createClient, createSerial, gqlOk, restValidate } from '../helper.ts'

const CREATE_POLICY = 'mutation ($input: CreatePolicyInput!) { createPolicy(input: $input) { id } }'

async function cappedSerial (app: FastifyInstance, maxDevices: number, maxActivationsPerDay: number) {
  const client = await createClient(app)
  const { createPolicy } = await gqlOk(app, CREATE_POLICY, { input: { name: 'Capped', maxDevices, maxActivationsPerDay } })
  return createSerial(app, client.id, { policyId: createPolicy.id })
}

const release = (app: FastifyInstance, serialNumber: string, deviceId: string) =>
  app.inject({ method: 'POST', url: '/api/v1/serials/release', payload: { serialNumber, deviceId } })

async function limitEvents (app: FastifyInstance, serialId: string) {
  return queryRows<{ code: string }>(app.deps.database.db, sql`select payload->>'code' as code from outbox where type = 'device.limit_reached' and aggregate_id = ${serialId}`)
}

t.test('the release-and-reactivate loop ends at the cap: TOO_MANY_ACTIVATIONS', async (t) => {
  const app = await build(t)
  const serial = await cappedSerial(app, 5, 2)
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'b' })).body.code, 'VALID')
  t.equal((await release(app, serial.serialNumber, 'a')).statusCode, 200)
  const again = await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })
  t.equal(again.body.code, 'TOO_MANY_ACTIVATIONS', 'releasing did not reset the count')
  t.equal(again.body.valid, false)
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'c' })).body.code, 'TOO_MANY_ACTIVATIONS')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'b' })).body.code, 'VALID', 'a device holding a slot is unaffected')
  const gqlAnswer = await gqlOk(app, 'mutation ($input: ValidateSerialInput!) { validateSerial(input: $input) { code } }', { input: { serialNumber: serial.serialNumber, deviceId: 'd' } }, null)
  t.equal(gqlAnswer.validateSerial.code, 'TOO_MANY_ACTIVATIONS')
  t.same((await limitEvents(app, serial.id)).map((e) => e.code), ['TOO_MANY_ACTIVATIONS'], 'one device.limit_reached for several refusals')

  // Activations older than 24 h no longer count.
  await app.deps.database.db.execute(sql`update device_activations set activated_at = now() - interval '25 hours' where serial_id = ${serial.id}`)
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'c' })).body.code, 'VALID', 'the window rolls')
})

t.test('the device limit is checked before the cap, and a node-locked serial without a policy has no cap', async (t) => {
  const app = await build(t)
  const serial = await cappedSerial(app, 1, 1)
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'a' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'b' })).body.code, 'TOO_MANY_DEVICES')
  t.same((await limitEvents(app, serial.id)).map((e) => e.code), ['TOO_MANY_DEVICES'])
  const client = await createClient(app)
  const plain = await createSerial(app, client.id, { maxUsageCount: 1 })
  for (let i = 0; i < 5; i++) {
    t.equal((await restValidate(app, { serialNumber: plain.serialNumber, deviceId: 'x' })).body.code, 'VALID')
    t.equal((await release(app, plain.serialNumber, 'x')).statusCode, 200)
  }
})

t.test('the cap holds under 100 concurrent new devices on two instances', async (t) => {
  const [a, b] = await buildPair(t)
  const serial = await cappedSerial(a, 1000, 7)
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => restValidate(i % 2 === 0 ? a : b, { serialNumber: serial.serialNumber, deviceId: `d-${i}` })))
  const codes = results.map((r) => r.body.code as string)
  t.equal(codes.filter((c) => c === 'VALID').length, 7)
  t.equal(codes.filter((c) => c === 'TOO_MANY_ACTIVATIONS').length, 93)
  t.equal((await limitEvents(a, serial.id)).length, 1, 'device.limit_reached raised once')
})
