// Slow, stalled and oversized requests over a real socket: each gets its status (408, 413, 431)
// with the contract's JSON body, and the connection is closed instead of held open.
import { once } from 'node:events'
import { connect } from 'node:net'
import WebSocket from 'ws'
import t from 'tap'
import { ADMIN_KEY, build } from '../helper.ts'

interface RawAnswer { status: number, body: Record<string, unknown> | null, raw: string }

type Write = (data: string | Buffer) => Promise<boolean>

/**
 * Runs `send` on a fresh connection, reading all the while (as any HTTP client does), until the
 * server closes. `write` waits for drain and answers false once the server has hung up.
 */
async function raw (port: number, send: (write: Write) => Promise<void>): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => { text += d })
    socket.on('error', () => {}) // a reset after the answer is fine; the answer is judged below
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
      const bodyText = text.split('\r\n\r\n').slice(1).join('\r\n\r\n')
      let body: Record<string, unknown> | null = null
      try { body = JSON.parse(bodyText) } catch {}
      resolve({ status, body, raw: text })
    })
    const write: Write = async (data) => {
      if (socket.destroyed || !socket.writable) return false
      if (!socket.write(data)) await new Promise((resolve) => { socket.once('drain', resolve); socket.once('close', resolve) })
      return !socket.destroyed
    }
    socket.on('connect', () => { send(write).catch(reject) })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('slow and stalled requests get a contract-format 408; big headers 431; big chunked bodies 413', async (t) => {
  const app = await build(t, { env: { HEADERS_TIMEOUT: '1', REQUEST_TIMEOUT: '2' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const stalledBody = await raw(port, async (write) => {
    await write('POST /api/v1/serials/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"')
  })
  t.equal(stalledBody.status, 408, 'a body that stops short of its Content-Length times out')
  t.match(stalledBody.body, { statusCode: 408, code: 'VALIDATION_ERROR', message: String }, 'in the contract format')

  const slowHeaders = await raw(port, async (write) => {
    await write('GET /health HTTP/1.1\r\n')
    for (let i = 0; i < 30; i++) {
      await sleep(200)
      if (!await write(`X-Slow-${i}: a\r\n`)) return
    }
  })
  t.equal(slowHeaders.status, 408, 'headers trickled in slower than HEADERS_TIMEOUT')
  t.match(slowHeaders.body, { statusCode: 408, code: 'VALIDATION_ERROR' })

  const bigHeader = await raw(port, async (write) => {
    await write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(60_000)}\r\n\r\n`)
  })
  t.equal(bigHeader.status, 431, 'a 60 KB header')
  t.match(bigHeader.body, { statusCode: 431, code: 'VALIDATION_ERROR', message: String })
  t.notMatch(bigHeader.raw, /"error":/, 'not Fastify\'s own {"error": …} body')

  const chunked = await raw(port, async (write) => {
    await write('POST /api/v1/serials/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    for (let sent = 0; sent < 10 * 1024 * 1024; sent += chunk.length) {
      if (!await write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]))) return
    }
    await write('0\r\n\r\n')
  })
  t.equal(chunked.status, 413, 'a 10 MB chunked body')
  t.match(chunked.body, { statusCode: 413, code: 'VALIDATION_ERROR' })

  const health = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(health.status, 200, 'the service still answers')

  // REQUEST_TIMEOUT bounds receiving a request, not a connection's life: an upgraded WebSocket
  // stays open past it (the timeouts are checked every second).
  const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
  await once(socket, 'open')
  const messages: string[] = []
  socket.on('message', (data) => messages.push(String(data)))
  socket.on('close', (code, reason) => messages.push(`close ${code} ${String(reason)}`))
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${ADMIN_KEY}` } }))
  await sleep(3500)
  t.equal(socket.readyState, WebSocket.OPEN, `a WebSocket outlives REQUEST_TIMEOUT ${messages.join(' | ')}`)
  socket.send(JSON.stringify({ type: 'ping' }))
  await sleep(300)
  t.ok(messages.some((m) => m.includes('"pong"')), 'and still answers')
  socket.close()
})
