// The ceiling: a bare Fastify route returning the same JSON as a validation answer.
import Fastify from 'fastify'

const answer = { valid: true, code: 'VALID', message: 'Serial is valid for this device', expiresAt: null, remainingDevices: 0, isDemo: false, serverTime: new Date().toISOString() }
const app = Fastify({ logger: false })
app.post('/validate', async () => ({ ...answer, serverTime: new Date().toISOString() }))
await app.listen({ port: Number(process.env.PORT ?? 3901), host: '127.0.0.1' })
process.send?.('ready')
