import DataLoader from 'dataloader'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ClientView } from '../clients/client-service.ts'
import type { Actor, RequestMeta } from '../platform/auth.ts'
import type { Services } from '../services.ts'

export interface GraphQLContext {
  actor: Actor
  meta: RequestMeta
  services: Services
  /** Per-request batch loaders: a page of serials with their clients costs one client query. */
  loaders: { client: DataLoader<string, ClientView | null> }
  issueToken: (actor: Actor, ttlSeconds: number) => { token: string, expiresAt: Date }
  reply?: FastifyReply
  request?: FastifyRequest
  /** Set by mercurius: publish/subscribe for subscriptions. */
  pubsub: { subscribe (topics: string | string[]): Promise<AsyncIterable<unknown>> }
}

export function createLoaders (services: Services, actor: Actor): GraphQLContext['loaders'] {
  return {
    client: new DataLoader((ids: readonly string[]) => services.clients.loadMany(actor, ids), { maxBatchSize: 100 })
  }
}
