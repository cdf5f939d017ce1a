// One error handler for every route: the contract's error body, never a stack or SQL text.
import fp from 'fastify-plugin'
import { NotFoundError, RateLimitError, toContractError } from './errors.ts'

export default fp(async (app) => {
  app.setErrorHandler((error, request, reply) => {
    const contract = toContractError(error)
    if (contract.code === 'INTERNAL') request.log.error({ err: error }, 'request failed')
    else request.log.info({ code: contract.code, msg: contract.message }, 'request rejected')
    if (contract instanceof RateLimitError) reply.header('retry-after', String(contract.retryAfterSeconds))
    const statusCode = (error as { statusCode?: number }).statusCode === 413 ? 413 : (error as { statusCode?: number }).statusCode === 415 ? 415 : contract.statusCode
    void reply.status(statusCode).send({ ...contract.toBody(), statusCode })
  })
  app.setNotFoundHandler((request, reply) => {
    const error = new NotFoundError(`route ${request.method} ${request.url.split('?')[0]} not found`)
    void reply.status(404).send(error.toBody())
  })
}, { name: 'errors' })
