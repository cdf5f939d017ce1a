// REDIS_CLUSTER_NODES: cache, rate-limit counters and pub/sub on a real 3-master Redis Cluster that
// this file starts on its own loopback ports (never the machine's Redis).
import { randomBytes } from 'node:crypto'
import { createClient as wsClient, type Client } from 'graphql-ws'
import { Cluster } from 'ioredis'
import t from 'tap'
import WebSocket from 'ws'
import { createCache } from '../../src/infra/cache.ts'
import { createEventBus } from '../../src/infra/event-bus.ts'
import { createWindowCounter, SYNC_MS } from '../../src/http/rate-limit.ts'
import { loadConfig } from '../../src/config/config.ts'
import { ownRedisCluster, redisClusterMissing } from '../cluster-servers.ts'
import { ADMIN_KEY, build, createClient, createSerial, databaseUrl, gqlOk, restValidate, TEST_DATA_DIR } from '../helper.ts'

const missing = redisClusterMissing()
if (missing && process.env.CI === 'true') throw new Error(`CI=true but a Redis Cluster cannot be started: ${missing}`)

async function until (what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!await fn()) {
    if (Date.now() > end) throw new Error(`${what}: not reached in time`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('REDIS_CLUSTER_NODES is parsed and validated', async (t) => {
  const config = await loadConfig({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, REDIS_CLUSTER_NODES: 'r1:7000, r2:7001,10.0.0.3:7002' })
  t.same(config.redis?.cluster, [{ host: 'r1', port: 7000 }, { host: 'r2', port: 7001 }, { host: '10.0.0.3', port: 7002 }])
  t.equal(config.redis?.url, 'redis://r1:7000')
  await t.rejects(loadConfig({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, REDIS_CLUSTER_NODES: 'r1' }), /REDIS_CLUSTER_NODES/)
  await t.rejects(loadConfig({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, REDIS_CLUSTER_NODES: 'r1:70000' }), /REDIS_CLUSTER_NODES/)
  const plain = await loadConfig({ NODE_ENV: 'test', DATA_DIR: TEST_DATA_DIR, REDIS_URL: 'redis://cache:6380' })
  t.equal(plain.redis?.cluster, undefined, 'no cluster unless REDIS_CLUSTER_NODES is set')
})

t.test('on a real 3-master cluster', { skip: missing }, async (t) => {
  const cluster = await ownRedisCluster(t)
  const prefix = `tc${randomBytes(3).toString('hex')}`
  const redisConfig = { url: `redis://${cluster.nodes.split(',')[0]}`, prefix, cluster: cluster.nodes.split(',').map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })) }

  t.test('cache, bus and counters spread over the masters and are shared by two instances', async (t) => {
    const busA = createEventBus(redisConfig)
    const busB = createEventBus(redisConfig)
    t.teardown(() => Promise.all([busA.close(), busB.close()]))
    await until('both buses healthy', () => busA.healthy() && busB.healthy())
    const cacheA = await createCache({ redis: redisConfig, bus: busA })
    const cacheB = await createCache({ redis: redisConfig, bus: busB })
    t.teardown(() => Promise.all([cacheA.close(), cacheB.close()]))
    t.ok(cacheA.redis instanceof Cluster, 'the cache talks to the cluster')
    // The cache has no offline queue (a command fails at once while Redis is unreachable).
    await until('cache clients ready', () => cacheA.redis?.status === 'ready' && cacheB.redis?.status === 'ready')

    const keys = Array.from({ length: 30 }, (_, i) => `serial:${i}:${randomBytes(4).toString('hex')}`)
    for (const key of keys) await cacheA.set(key, { key }, 60)
    const masters = (cacheA.redis as Cluster).nodes('master')
    t.equal(masters.length, 3)
    const sizes = await Promise.all(masters.map((node) => node.keys(`${prefix}:serial:*`).then((k) => k.length)))
    t.equal(sizes.reduce((a, b) => a + b, 0), 30, 'every key is stored once in the cluster')
    t.ok(sizes.filter((n) => n > 0).length >= 2, `keys live on several masters (${sizes.join('/')})`)

    for (const key of keys) t.same(await cacheB.get(key), { key }, 'instance B reads what A wrote (L2)')
    t.ok(keys.every((key) => cacheB.getLocal(key) !== undefined), 'and now holds it in L1')

    // One invalidation over keys of many slots: removed from the cluster and from B's L1.
    await cacheA.invalidate(keys)
    await until('B dropped its L1 copies', () => keys.every((key) => cacheB.getLocal(key) === undefined))
    const left = await Promise.all(masters.map((node) => node.keys(`${prefix}:serial:*`).then((k) => k.length)))
    t.same(left, [0, 0, 0], 'deleted on every master')

    // Pub/sub: a message published through one node reaches a subscriber connected to another.
    const heard: unknown[] = []
    await busB.subscribe('event/test.cluster/x', (payload) => { heard.push(payload) })
    await busA.publish('event/test.cluster/x', { n: 1 })
    await until('B heard A', () => heard.length === 1)
    t.same(heard, [{ n: 1 }])

    // Counters: many keys (many slots) counted locally on A, synced in the background, read on B.
    const counterA = createWindowCounter(cacheA.redis, `${prefix}:rlx:`)
    const counterB = createWindowCounter(cacheB.redis, `${prefix}:rlx:`)
    t.teardown(() => { counterA.close(); counterB.close() })
    const counterKeys = Array.from({ length: 12 }, (_, i) => `v:10.0.0.${i}`)
    for (const key of counterKeys) {
      for (let i = 0; i < 5; i++) await counterA.hit(key, 60_000, 1, 1000)
    }
    await sleep(SYNC_MS * 4)
    for (const key of counterKeys) t.equal((await counterB.peek(key, 1000)).count, 5, `${key} counted across instances`)
  })

  t.test('two app instances on the cluster', async (t) => {
    const env = { REDIS_URL: undefined, REDIS_CLUSTER_NODES: cluster.nodes, REDIS_PREFIX: `${prefix}a`, VALIDATE_RATE_LIMIT: '6' }
    const a = await build(t, { env })
    const b = await build(t, { env })
    t.equal(a.deps.cache.kind, 'redis')
    t.ok(a.deps.cache.redis instanceof Cluster)

    t.test('one validation budget counted across both', async (t) => {
      const body = { serialNumber: 'not-a-serial', deviceId: 'pc' }
      for (let i = 0; i < 3; i++) t.equal((await restValidate(a, body)).status, 200)
      for (let i = 0; i < 3; i++) t.equal((await restValidate(b, body)).status, 200)
      const over = await restValidate(b, body)
      t.equal(over.status, 429, 'the 7th call, on the other instance, is over the budget of 6')
      t.equal(over.body.code, 'RATE_LIMITED')
      t.equal((await restValidate(a, body)).status, 429)
    })

    // Revocation and subscriptions need both instances on one database: with embedded PGlite (one
    // per instance) both roles run on instance A, still through the cluster.
    const envOpen = { ...env, VALIDATE_RATE_LIMIT: '100000', REDIS_PREFIX: `${prefix}b` }
    const a2 = await build(t, { env: envOpen })
    const b2 = databaseUrl ? await build(t, { env: envOpen }) : a2

    t.test('revoke on one instance: REVOKED on the other', async (t) => {
      const client = await createClient(a2)
      const serial = await createSerial(a2, client.id)
      const first = await restValidate(b2, { serialNumber: serial.serialNumber, deviceId: 'pc' })
      t.equal(first.body.code, 'VALID')
      t.equal((await restValidate(b2, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code, 'VALID', 'now cached on B')
      await gqlOk(a2, 'mutation ($input: RevokeSerialInput!) { revokeSerial(input: $input) { id status } }', { input: { id: serial.id, reason: 'cluster test' } })
      let code = ''
      await until('B answers REVOKED', async () => {
        code = (await restValidate(b2, { serialNumber: serial.serialNumber, deviceId: 'pc' })).body.code as string
        return code === 'REVOKED'
      })
      t.equal(code, 'REVOKED')
    })

    t.test('a usage event recorded on one instance reaches a subscriber on the other', async (t) => {
      const client = await createClient(a2)
      const serial = await createSerial(a2, client.id)
      await b2.listen({ port: 0, host: '127.0.0.1' })
      const url = `ws://127.0.0.1:${(b2.server.address() as { port: number }).port}/graphql`
      const ws: Client = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
      t.teardown(() => ws.dispose())
      const received: Array<{ usageRecorded: { serialId: string, quantity: number } }> = []
      const errors: unknown[] = []
      let connected = false
      ws.on('connected', () => { connected = true })
      ws.subscribe({ query: 'subscription ($c: ID) { usageRecorded(clientId: $c) { serialId quantity } }', variables: { c: client.id } },
        { next: (v) => { if (v.errors) errors.push(v.errors); else received.push(v.data as never) }, error: (e) => errors.push(e), complete: () => {} })
      await until('subscribed', () => connected)
      await sleep(300)
      const res = await a2.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'pc', quantity: 7 } })
      t.equal(res.statusCode, 201)
      await until('event received', () => received.length > 0 || errors.length > 0)
      t.same(errors, [])
      t.same(received, [{ usageRecorded: { serialId: serial.id, quantity: 7 } }])
    })
  })
})
