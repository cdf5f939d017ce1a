// The failed-lookup throttle counts answers that are NOT_FOUND, never bodies that merely spell it:
// a device's own info may hold `{"code":"NOT_FOUND"}` and come back in every release answer.
import t from 'tap'
import { generateSerialNumber } from '../../src/domain/serials/serial-number.ts'
import { FAILED_LOOKUP_LIMIT } from '../../src/http/rate-limit.ts'
import { build, createClient, createSerial } from '../helper.ts'

t.test('a successful answer whose data contains "code":"NOT_FOUND" is not a failed look-up', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const body = { serialNumber: serial.serialNumber, deviceId: 'd-text' }
  const activated = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { ...body, deviceInfo: { code: 'NOT_FOUND' } } })
  t.equal(activated.json().code, 'VALID')

  for (let i = 0; i <= FAILED_LOOKUP_LIMIT; i++) {
    // Releasing an already released device is idempotent: 200 with the device, its info included.
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/release', payload: body })
    if (res.statusCode !== 200) { t.fail(`release ${i + 1} answered ${res.statusCode} ${res.body}`); break }
    if (i === 0) t.ok(res.body.includes('"code":"NOT_FOUND"'), 'the body does contain the text')
  }
  const after = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: body })
  t.equal(after.statusCode, 200, 'the address is not throttled')
  t.equal(after.json().code, 'VALID')
})

t.test('a NotFoundError answered by the error handler still counts', async (t) => {
  const app = await build(t, { background: false })
  for (let i = 0; i < FAILED_LOOKUP_LIMIT; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/serials/release', payload: { serialNumber: generateSerialNumber(), deviceId: 'd' } })
    t.equal(res.statusCode, 404)
    t.equal(res.json().code, 'NOT_FOUND')
  }
  const refused = await app.inject({ method: 'POST', url: '/api/v1/serials/validate', payload: { serialNumber: generateSerialNumber(), deviceId: 'd' } })
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().code, 'RATE_LIMITED')
})
