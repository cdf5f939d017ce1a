// Redis down: the service starts, reports "degraded", and still validates from PostgreSQL.
import t from 'tap'
import { build, createClient, createSerial, databaseUrl, freePort, gqlOk, restValidate } from '../helper.ts'

t.test('with Redis unreachable: degraded, and validation still answers', async (t) => {
  const port = await freePort()
  const app = await build(t, { env: { REDIS_URL: `redis://127.0.0.1:${port}`, DATABASE_URL: databaseUrl ?? 'memory://' }, skipRedisCheck: true })
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { status: 'degraded', checks: { database: { status: 'up' }, cache: { status: 'down', kind: 'redis' }, eventBus: { status: 'down', kind: 'redis' } } })

  const client = await createClient(app)
  const serial = await createSerial(app, client.id, { maxUsageCount: 1 })
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'VALID')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'other' })).body.code, 'TOO_MANY_DEVICES')
  const revoked = await gqlOk(app, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { status } }', { input: { id: serial.id, reason: 'x' } })
  t.equal(revoked.revokeSerial.status, 'REVOKED', 'changes still commit')
  t.equal((await restValidate(app, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'REVOKED', 'this instance sees it at once')
})
