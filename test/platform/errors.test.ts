import t from 'tap'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { build } from '../helper.ts'

t.test('malformed input and unknown routes get the contract error format', async (t) => {
  const app = await build(t)

  const badJson = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'application/json' }, payload: '{"serialNumber": ' })
  t.equal(badJson.statusCode, 400)
  t.match(badJson.json(), { statusCode: 400, code: 'VALIDATION_ERROR', message: String })

  const wrongType = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'text/plain' }, payload: 'hello' })
  t.equal(wrongType.statusCode, 415)
  t.match(wrongType.json(), { code: 'VALIDATION_ERROR' })

  const big = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ serialNumber: 'x', deviceId: 'd', pad: 'x'.repeat(1024 * 1024 + 10) }) })
  t.equal(big.statusCode, 413)
  t.match(big.json(), { code: 'VALIDATION_ERROR', message: /1 MiB/ })

  const missing = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { deviceId: 'd' } })
  t.equal(missing.statusCode, 400)
  t.match(missing.json(), { code: 'VALIDATION_ERROR', errors: [{ field: 'serialNumber' }] })

  const wrongFieldType = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: 42, deviceId: ['x'] } })
  t.equal(wrongFieldType.statusCode, 400)
  t.match(wrongFieldType.json(), { code: 'VALIDATION_ERROR' })

  const unknown = await app.inject({ method: 'GET', url: '/no/such/route' })
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { statusCode: 404, code: 'NOT_FOUND', message: 'route GET /no/such/route not found' })
})

t.test('an unexpected error is INTERNAL with no stack or SQL in the body', async (t) => {
  const app = await build(t)
  // Break the database under the running app: every query now fails inside the driver.
  await app.deps.database.close()
  // A well-formed number reaches the database; whatever the driver says stays in the log.
  const res = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: generateSerialNumber(), deviceId: 'd1' } })
  t.equal(res.statusCode, 500)
  t.same(res.json(), { statusCode: 500, code: 'INTERNAL', message: 'Internal server error' })
  t.notMatch(res.body, /select|at \w+ \(|node_modules/i)
})

t.test('request id: accepted when safe, generated otherwise, echoed back', async (t) => {
  const app = await build(t)
  const given = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'abc-123' } })
  t.equal(given.headers['x-request-id'], 'abc-123')
  const unsafe = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'bad id\nwith newline' } })
  t.match(unsafe.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  const none = await app.inject({ method: 'GET', url: '/health' })
  t.match(none.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})

t.test('helmet headers are set', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.ok(res.headers['strict-transport-security'])
})
