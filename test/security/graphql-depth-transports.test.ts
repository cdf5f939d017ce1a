// Depth is bounded in one place, DepthLimitRule at validation, and that place serves both
// transports: the same documents are refused over HTTP and over the WebSocket.
import t from 'tap'
import { createClient as wsClient } from 'graphql-ws'
import WebSocket from 'ws'
import { INTROSPECTION_DEPTH, QUERY_DEPTH } from '../../src/http/graphql/document-limits.ts'
import { ADMIN_KEY, build, gql } from '../helper.ts'

type Errors = Array<{ message: string, extensions?: { code?: string } }>

const nest = (n: number, inner: string) => Array.from({ length: n }).reduce<string>((acc) => `a { ${acc} }`, inner)
const ofType = (n: number) => Array.from({ length: n }).reduce<string>((acc) => `ofType { ${acc} }`, 'name')
const tooDeep = `{ me { ${nest(QUERY_DEPTH - 1, 'x')} } }`
const deepIntrospection = `{ __schema { types { fields { type { ${ofType(INTROSPECTION_DEPTH)} } } } } }`

t.test('too deep over HTTP and over WebSocket: VALIDATION_ERROR naming the depth', async (t) => {
  const app = await build(t, { background: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/graphql`
  const socket = wsClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_KEY}` }, retryAttempts: 0 })
  t.teardown(() => socket.dispose())
  const overWs = (query: string) => new Promise<Errors | undefined>((resolve) => {
    let errors: Errors | undefined
    socket.subscribe({ query }, {
      next: (value) => { errors = value.errors as Errors | undefined },
      error: (error) => resolve(error as Errors),
      complete: () => resolve(errors)
    })
  })

  for (const [name, query, pattern] of [
    ['query', tooDeep, new RegExp(`has depth ${QUERY_DEPTH + 1}; the limit is ${QUERY_DEPTH}`)],
    ['introspection', deepIntrospection, new RegExp(`Introspection .* the limit is ${INTROSPECTION_DEPTH}`)]
  ] as const) {
    const http = await gql(app, query)
    t.ok(http.errors?.some((e) => pattern.test(e.message) && e.extensions.code === 'VALIDATION_ERROR'), `${name} over HTTP`)
    const ws = await overWs(query)
    t.ok(ws?.some((e) => pattern.test(e.message) && e.extensions?.code === 'VALIDATION_ERROR'), `${name} over WebSocket`)
  }
  t.same((await overWs('{ me { id } }')) ?? [], [], 'a shallow query still runs over WebSocket')
})
