// A subscriber's failure never stops delivery, and is never silent: one error log line (with the
// topic) and one serials_bus_subscriber_errors_total per failed handler, in process and on Redis.
import t from 'tap'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { createEventBus, type EventBusOptions } from '../../src/infra/event-bus.ts'
import { createMetrics } from '../../src/infra/metrics.ts'
import { redisUrl, testConfig, until } from '../helper.ts'

const backends = [
  { name: 'in process', skip: false, redis: async () => undefined },
  { name: 'on Redis', skip: redisUrl ? false : 'TEST_REDIS_URL not set (CI sets it)', redis: async () => (await testConfig()).redis }
]

for (const backend of backends) {
  t.test(`${backend.name}: a throwing or rejecting handler is logged and counted, delivery goes on`, { skip: backend.skip }, async (t) => {
    const redis = await backend.redis()
    const metrics = createMetrics()
    const lines: Array<{ object: { err?: unknown, topic?: string }, message: string }> = []
    const log: EventBusOptions['log'] = { error: (object, message) => { lines.push({ object, message }) } }
    const bus = createEventBus(redis, { log, subscriberErrors: metrics.busSubscriberErrors })
    t.teardown(() => bus.close())
    t.ok(await bus.whenHealthy(5000), 'bus is up')

    const heard: string[] = []
    const offs = [
      await bus.subscribe('test/throws', () => { throw new Error('sync failure') }),
      await bus.subscribe('test/rejects', async () => { throw new Error('async failure') }),
      await bus.subscribe('test/+', (payload) => { heard.push(String((payload as { n: number }).n)) })
    ]
    t.teardown(async () => { for (const off of offs) await off() })

    await bus.publish('test/throws', { n: 1 })
    await bus.publish('test/rejects', { n: 2 })
    await bus.publish('test/throws', { n: 3 })
    await until(() => heard.length === 3 && lines.length === 3, 'three deliveries and three failures')

    // Delivery order across topics is not guaranteed on Redis: compare as sorted lists.
    t.same(heard.sort(), ['1', '2', '3'], 'the other subscriber heard every message')
    t.same(lines.map((l) => `${l.object.topic} ${(l.object.err as Error).message}`).sort(),
      ['test/rejects async failure', 'test/throws sync failure', 'test/throws sync failure'], 'each line names the subscribed topic and the error')
    t.ok(lines.every((l) => l.message === 'event bus subscriber failed'))
    const [counted] = (await metrics.busSubscriberErrors.get()).values
    t.equal(counted?.value, 3, 'serials_bus_subscriber_errors_total counts each failure')
    t.match(await metrics.registry.metrics(), /^serials_bus_subscriber_errors_total 3$/m, 'and it is exposed')
  })
}

t.test('the service logger fits, and a failing logger or counter does not break delivery', async (t) => {
  const serviceLog: FastifyBaseLogger = pino({ level: 'silent' })
  const quiet = createEventBus(undefined, { log: serviceLog })
  t.teardown(() => quiet.close())

  const broken = createEventBus(undefined, {
    log: { error: () => { throw new Error('logger down') } },
    subscriberErrors: { inc: () => { throw new Error('counter down') } }
  })
  t.teardown(() => broken.close())
  let calls = 0
  const off = await broken.subscribe('x', () => { calls++; throw new Error('handler failure') })
  t.teardown(off)
  await broken.publish('x', 1)
  await broken.publish('x', 2)
  await until(() => calls === 2, 'both messages delivered to the failing handler')
  t.pass('no unhandled rejection, delivery goes on')
})
