import t from 'tap'
import { build, realBackends } from '../helper.ts'

t.test('liveness and readiness report the backends in use', async (t) => {
  const app = await build(t)
  const live = await app.inject({ method: 'GET', url: '/health' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'ok' })

  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  const body = ready.json()
  t.equal(body.status, 'ok')
  t.match(body.checks.database, { status: 'up', kind: realBackends ? 'postgres' : 'pglite', latencyMs: Number })
  t.match(body.checks.cache, { status: 'up', kind: realBackends ? 'redis' : 'memory' })
  t.match(body.checks.eventBus, { status: 'up', kind: realBackends ? 'redis' : 'memory' })
})

t.test('readiness answers 503 quickly when the database is gone', async (t) => {
  const app = await build(t)
  await app.deps.database.close()
  const started = Date.now()
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().status, 'down')
  t.equal(ready.json().checks.database.status, 'down')
  t.ok(Date.now() - started < 5000, 'does not hang')
})
