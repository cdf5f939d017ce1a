// One error handler for every route: the contract's error body, never a stack or SQL text.
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { NotFoundError, RateLimitError, ServiceUnavailableError, ValidationError, toContractError, unavailableReason } from '../kernel/errors.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * True once the answer is NOT_FOUND: a NotFoundError answered here, or a public route's
     * validation result with that code (rate-limit.ts). The failed-lookup throttle counts these.
     */
    answeredNotFound: boolean
  }
}

export default fp(async (app) => {
  app.decorateRequest('answeredNotFound', false)
  app.setErrorHandler((error, request, reply) => {
    const contract = toContractError(error)
    if (contract.code === 'NOT_FOUND') request.answeredNotFound = true
    if (contract.code === 'INTERNAL') request.log.error({ err: error }, 'request failed')
    else if (contract instanceof ServiceUnavailableError) request.log.warn({ code: contract.code, reason: unavailableReason(error) }, 'request failed: a backend is unavailable')
    else request.log.info({ code: contract.code, msg: contract.message }, 'request rejected')
    if (contract instanceof RateLimitError || contract instanceof ServiceUnavailableError) reply.header('retry-after', String(contract.retryAfterSeconds))
    const statusCode = (error as { statusCode?: number }).statusCode === 413 ? 413 : (error as { statusCode?: number }).statusCode === 415 ? 415 : contract.statusCode
    void reply.status(statusCode).send({ ...contract.toBody(), statusCode })
  })
  app.setNotFoundHandler((request, reply) => {
    const error = new NotFoundError(`route ${request.method} ${request.url.split('?')[0]} not found`)
    request.answeredNotFound = true
    void reply.status(404).send(error.toBody())
  })
}, { name: 'errors' })

/** Errors Node's HTTP parser raises before a request reaches Fastify, by their code. */
const CLIENT_ERRORS: Record<string, { status: number, reason: string, message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', message: 'The request was not received in time' },
  HPE_HEADER_OVERFLOW: { status: 431, reason: 'Request Header Fields Too Large', message: 'Request headers are larger than allowed' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, reason: 'Content Too Large', message: 'Chunk extensions are larger than allowed' }
}

/**
 * Fastify's clientErrorHandler: the socket-level failures (headers or body too slow, headers too
 * large, malformed HTTP) answered in the contract's error format instead of Node's plain text,
 * then the connection is closed (its framing can no longer be trusted).
 */
export function clientErrorHandler (this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const known = error.code ? CLIENT_ERRORS[error.code] : undefined
  const { status, reason, message } = known ?? { status: 400, reason: 'Bad Request', message: 'Malformed HTTP request' }
  this.log.debug({ code: error.code }, 'client error')
  // A response already under way on this socket cannot be replaced; only closing is left.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify({ ...new ValidationError(message).toBody(), statusCode: status })
    // end(), not destroy(): the answer is flushed before the socket closes.
    socket.once('finish', () => socket.destroy())
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    return
  }
  socket.destroy(error)
}
