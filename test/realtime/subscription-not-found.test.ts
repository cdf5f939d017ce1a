// Issue 28, item 10: a subscription naming a client or serial that does not exist answers
// NOT_FOUND for every role, as one naming another client's object already did for a MANAGER;
// never a silent stream that would wait forever for events that cannot come.
import type { FastifyInstance } from 'fastify'
import { createClient as wsClient } from 'graphql-ws'
import t from 'tap'
import WebSocket from 'ws'
import { ADMIN_KEY, build, createApiKey, createClient, createSerial } from '../helper.ts'

const USAGE = 'subscription ($c: ID, $s: ID) { usageRecorded(clientId: $c, serialId: $s) { id } }'
const SERIALS = 'subscription ($c: ID) { serialChanged(clientId: $c) { type } }'

/** The subscription's first answer: its error code, 'event', 'complete', or 'silence' within `ms`. */
async function firstAnswer (port: number, token: string, query: string, variables: Record<string, unknown>, ms = 1500): Promise<string> {
  const client = wsClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 })
  try {
    return await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('silence'), ms)
      const done = (answer: string) => { clearTimeout(timer); resolve(answer) }
      const codeOf = (errors: unknown) => {
        const list = (Array.isArray(errors) ? errors : [errors]) as Array<{ extensions?: { code?: string } }>
        return list[0]?.extensions?.code ?? JSON.stringify(errors)
      }
      client.subscribe({ query, variables }, {
        next: (value) => done(value.errors ? codeOf(value.errors) : 'event'),
        error: (error) => done(codeOf(error)),
        complete: () => done('complete')
      })
    })
  } finally {
    await client.dispose()
  }
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as { port: number }).port
}

t.test('usageRecorded and serialChanged answer NOT_FOUND for a client or serial that does not exist, for every role', async (t) => {
  const app = await build(t)
  const own = await createClient(app)
  const other = await createClient(app)
  const otherSerial = await createSerial(app, other.id)
  const ownSerial = await createSerial(app, own.id)
  const port = await listen(app)
  const roles = {
    ADMIN: ADMIN_KEY,
    AUDITOR: await createApiKey(app, 'AUDITOR'),
    MANAGER: await createApiKey(app, 'MANAGER', own.id)
  }
  const missingClient = 'cli_doesnotexist0000000000'
  const missingSerial = 'ser_doesnotexist0000000000'
  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['usageRecorded(clientId: unknown)', USAGE, { c: missingClient }],
    ['usageRecorded(serialId: unknown)', USAGE, { s: missingSerial }],
    ['usageRecorded(clientId: own, serialId: unknown)', USAGE, { c: own.id, s: missingSerial }],
    ['serialChanged(clientId: unknown)', SERIALS, { c: missingClient }]
  ]
  for (const [role, token] of Object.entries(roles)) {
    for (const [name, query, variables] of cases) {
      t.equal(await firstAnswer(port, token, query, variables), 'NOT_FOUND', `${role} ${name}: NOT_FOUND`)
    }
  }
  // Another client's objects stay NOT_FOUND for a MANAGER (they do not exist for it).
  t.equal(await firstAnswer(port, roles.MANAGER, USAGE, { c: other.id }), 'NOT_FOUND', 'MANAGER usageRecorded(clientId: another client): NOT_FOUND')
  t.equal(await firstAnswer(port, roles.MANAGER, USAGE, { s: otherSerial.id }), 'NOT_FOUND', 'MANAGER usageRecorded(serialId: another client\'s serial): NOT_FOUND')
  t.equal(await firstAnswer(port, roles.MANAGER, SERIALS, { c: other.id }), 'NOT_FOUND', 'MANAGER serialChanged(clientId: another client): NOT_FOUND')
  // Existing ids the role may see still open a live stream.
  for (const [role, token] of Object.entries(roles)) {
    t.equal(await firstAnswer(port, token, USAGE, { c: own.id, s: ownSerial.id }, 700), 'silence', `${role} usageRecorded(own client and serial): open`)
    t.equal(await firstAnswer(port, token, SERIALS, { c: own.id }, 700), 'silence', `${role} serialChanged(own client): open`)
  }
  t.equal(await firstAnswer(port, roles.ADMIN, USAGE, { c: other.id, s: otherSerial.id }, 700), 'silence', 'ADMIN usageRecorded(another client\'s serial): open')
})
