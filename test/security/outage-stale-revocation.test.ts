// Issue 12, items 13 and 5 during an outage: two instances on PostgreSQL and a Redis this test
// owns. With Redis killed, a serial and an API key revoked through A are refused by B within the
// outage bound (DEGRADED_TTL_MS), although B had both cached as valid; after Redis returns, B
// hears the missed key revocation (onCredentialRevoked) and invalidations work again.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { DEGRADED_TTL_MS } from '../../src/infra/cache.ts'
import { build, createClient, createSerial, databaseUrl, gql, gqlOk, restValidate, until } from '../helper.ts'
import { ownRedis, redisServerBinary } from '../redis-server.ts'

const missing = !databaseUrl ? 'PostgreSQL (TEST_DATABASE_URL) shared by two instances' : !redisServerBinary ? 'redis-server' : null
if (missing && process.env.CI === 'true') throw new Error(`outage tests need ${missing}`)

const ISSUE = 'mutation { issueToken(input: { ttlSeconds: 3600 }) { token } }'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const code = async (app: FastifyInstance, serialNumber: string, deviceId = 'pc') => (await restValidate(app, { serialNumber, deviceId })).body.code as string
/** 'OK', or the error code the credential gets (GraphQL answers 200 with errors for application/json). */
const meStatus = async (app: FastifyInstance, token: string) => {
  const res = await gql(app, '{ me { id } }', {}, token)
  return res.errors?.[0]?.extensions.code ?? (res.data?.me ? 'OK' : 'NO_DATA')
}

t.test('Redis down: revocations through one instance reach the other within the outage bound', { skip: missing ? `needs ${missing}` : false }, async (t) => {
  const redis = await ownRedis(t)
  const env = { REDIS_URL: redis.url, DATABASE_URL: databaseUrl, REDIS_PREFIX: `outage${process.pid}` }
  const a = await build(t, { env })
  const b = await build(t, { env })
  await until(() => a.deps.bus.healthy() && b.deps.bus.healthy(), 'both buses to be heard', 15_000)

  const client = await createClient(a)
  const serial = await createSerial(a, client.id, { maxUsageCount: 3 })
  const bystander = await createSerial(a, client.id, { maxUsageCount: 3 })
  const { createApiKey } = await gqlOk(a, 'mutation { createApiKey(input: { name: "outage", role: AUDITOR }) { secret apiKey { id } } }')
  const key = { id: createApiKey.apiKey.id as string, secret: createApiKey.secret as string }
  const token = (await gqlOk(a, ISSUE, {}, key.secret)).issueToken.token as string
  const heardOnB: string[] = []
  b.onCredentialRevoked((keyId) => heardOnB.push(keyId))

  // B has everything cached as valid before the outage.
  for (let i = 0; i < 2; i++) {
    t.equal(await code(b, serial.serialNumber), 'VALID')
    t.equal(await code(b, bystander.serialNumber), 'VALID')
    t.equal(await meStatus(b, token), 'OK')
    t.equal(await meStatus(b, key.secret), 'OK')
  }

  await redis.stop()
  await until(() => !a.deps.bus.healthy() && !b.deps.bus.healthy(), 'both instances to notice the outage', 15_000)
  await gqlOk(a, 'mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { status } }', { i: { id: serial.id, reason: 'outage test' } })
  await gqlOk(a, 'mutation ($id: ID!) { revokeApiKey(input: { id: $id }) { id } }', { id: key.id })
  t.equal(await code(a, serial.serialNumber), 'REVOKED', 'the revoking instance knows at once')
  t.equal(await meStatus(a, token), 'AUTHENTICATION_ERROR')

  // B could not hear the invalidation; its cached copies expire within the bound.
  await sleep(DEGRADED_TTL_MS + 300)
  t.equal(await code(b, serial.serialNumber), 'REVOKED', `B answers REVOKED ${DEGRADED_TTL_MS + 300} ms after the revocation (was VALID for ~25 s)`)
  t.equal(await meStatus(b, token), 'AUTHENTICATION_ERROR', 'B refuses the JWT issued from the revoked key')
  t.equal(await meStatus(b, key.secret), 'AUTHENTICATION_ERROR', 'B refuses the revoked key')
  t.equal(await code(b, bystander.serialNumber), 'VALID', 'B still validates from PostgreSQL while Redis is down')
  t.equal(await code(b, bystander.serialNumber, 'second'), 'VALID', 'device activation works too')

  await redis.start()
  await until(() => a.deps.bus.healthy() && b.deps.bus.healthy(), 'both buses to be heard again', 15_000)
  await until(() => heardOnB.includes(key.id), 'B to hear the revocation it missed', 15_000)
  t.same(heardOnB, [key.id], 'onCredentialRevoked fired on B once, after the outage')
  await until(() => b.deps.services.apiKeys.revokedKeys.known(key.id) === true, 'B to answer from memory again', 15_000)
  t.pass('B answers from memory again (the revoked set was reloaded)')

  // Invalidation through the bus works again: B caches, A revokes, B follows.
  t.equal(await code(b, bystander.serialNumber), 'VALID')
  t.equal(await code(b, bystander.serialNumber), 'VALID')
  await gqlOk(a, 'mutation ($i: RevokeSerialInput!) { revokeSerial(input: $i) { status } }', { i: { id: bystander.id, reason: 'after outage' } })
  await until(async () => await code(b, bystander.serialNumber) === 'REVOKED', 'B to see the revocation after recovery', 5000)
  t.pass('B follows a revocation after recovery')
})
