import DataLoader from 'dataloader'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ApiKeyView } from '../domain/api-keys/api-key-service.ts'
import type { AuditEntry } from '../domain/audit/audit-service.ts'
import type { ClientView } from '../domain/clients/client-service.ts'
import type { DeviceView } from '../domain/devices/device-service.ts'
import type { Actor, RequestMeta } from '../kernel/access.ts'
import type { PolicyView } from '../domain/policies/policy-service.ts'
import { NotFoundError } from '../kernel/errors.ts'
import type { SerialView } from '../domain/serials/serial-service.ts'
import type { Services } from '../main/compose.ts'
import type { UsageEventView } from '../domain/usage/usage-service.ts'
import type { DeliveryRow, WebhookView } from '../domain/webhooks/webhook-service.ts'

/**
 * Per-request batch loaders, each answering null for an object the actor may not see (tenant
 * rules live in the services). A page of serials with their clients costs one client query;
 * nodes(ids) costs one query per type.
 */
export interface Loaders {
  client: DataLoader<string, ClientView | null>
  serial: DataLoader<string, SerialView | null>
  device: DataLoader<string, DeviceView | null>
  usageEvent: DataLoader<string, UsageEventView | null>
  apiKey: DataLoader<string, ApiKeyView | null>
  auditEntry: DataLoader<string, AuditEntry | null>
  webhook: DataLoader<string, WebhookView | null>
  webhookDelivery: DataLoader<string, DeliveryRow | null>
  /** Policies are vendor-wide: every authenticated caller reads every one. */
  policy: DataLoader<string, PolicyView | null>
}

export interface GraphQLContext {
  actor: Actor
  meta: RequestMeta
  services: Services
  loaders: Loaders
  issueToken: (actor: Actor, ttlSeconds: number) => { token: string, expiresAt: Date }
  reply?: FastifyReply
  request?: FastifyRequest
  /** Set by mercurius: publish/subscribe for subscriptions. */
  pubsub: { subscribe (topics: string | string[]): Promise<AsyncIterable<unknown>> }
}

const batch = { maxBatchSize: 100 }

export function createLoaders (services: Services, actor: Actor): Loaders {
  return {
    client: new DataLoader((ids: readonly string[]) => services.clients.loadMany(actor, ids), batch),
    // The serial service reads one row per id (its get applies the tenant rule); rare enough here.
    serial: new DataLoader((ids: readonly string[]) => Promise.all(ids.map((id) => services.serials.get(actor, id)
      .catch((error: unknown) => error instanceof NotFoundError ? null : error as Error))), batch),
    device: new DataLoader((ids: readonly string[]) => services.devices.loadMany(actor, ids), batch),
    usageEvent: new DataLoader((ids: readonly string[]) => services.usage.loadMany(actor, ids), batch),
    apiKey: new DataLoader((ids: readonly string[]) => services.apiKeys.loadMany(actor, ids), batch),
    auditEntry: new DataLoader((ids: readonly string[]) => services.audit.loadMany(actor, ids), batch),
    webhook: new DataLoader((ids: readonly string[]) => services.webhooks.loadMany(actor, ids), batch),
    webhookDelivery: new DataLoader((ids: readonly string[]) => services.webhooks.loadDeliveries(actor, ids), batch),
    policy: new DataLoader(async (ids: readonly string[]) => {
      const byId = new Map((await services.policies.byIds(ids)).map((p) => [p.id, p]))
      return ids.map((id) => byId.get(id) ?? null)
    }, batch)
  }
}
