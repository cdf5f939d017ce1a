// Live usage and serial changes. Events come from the outbox relay over the event bus, so a
// subscriber on any instance sees changes made on every instance.
import { builder } from '../graphql/builder.ts'
import type { GraphQLContext } from '../graphql/context.ts'
import { eventTopic, type DomainEventType } from '../events/domain-events.ts'
import type { PublishedEvent } from '../events/outbox-relay.ts'
import { canSeeClient } from '../platform/auth.ts'
import { FeatureDisabledError, NotFoundError, ValidationError } from '../platform/errors.ts'
import { SerialRef } from '../serials/serial-graphql.ts'
import type { SerialView } from '../serials/serial-service.ts'
import { UsageEventRef } from './usage-graphql.ts'
import { MAX_REPLAY, type UsageEventView } from './usage-service.ts'

const SERIAL_EVENTS: DomainEventType[] = ['serial.created', 'serial.updated', 'serial.suspended', 'serial.reinstated', 'serial.revoked']

function scopeTopic (ctx: GraphQLContext, type: DomainEventType, clientId: string | null | undefined): string {
  if (!ctx.services.features.realTimeUpdates) throw new FeatureDisabledError('FEATURE_REAL_TIME_UPDATES')
  if (clientId) {
    if (!canSeeClient(ctx.actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
    return eventTopic(type, clientId)
  }
  // Without a clientId a MANAGER still only hears its own client.
  if (ctx.actor.role === 'MANAGER') return eventTopic(type, ctx.actor.clientId ?? '_none')
  return eventTopic(type, '+')
}

async function * usageStream (ctx: GraphQLContext, clientId: string | null | undefined, serialId: string | null | undefined, after: number | undefined): AsyncGenerator<UsageEventView> {
  const topic = scopeTopic(ctx, 'usage.recorded', clientId)
  // Subscribe before reading the backlog so nothing falls between the two; dedupe by seq.
  const live = await ctx.pubsub.subscribe(topic) as AsyncIterable<PublishedEvent>
  let lastSeq = -1
  if (after !== undefined) {
    const scopeClient = clientId ?? (ctx.actor.role === 'MANAGER' ? ctx.actor.clientId : null)
    for (const event of await ctx.services.usage.since({ clientId: scopeClient, serialId }, after, MAX_REPLAY)) {
      lastSeq = event.seq
      yield event
    }
  }
  for await (const message of live) {
    const event = message.payload as unknown as UsageEventView
    if (serialId && event.serialId !== serialId) continue
    if (event.seq <= lastSeq) continue
    yield event
  }
}

async function * serialStream (ctx: GraphQLContext, clientId: string | null | undefined): AsyncGenerator<{ type: string, serial: SerialView }> {
  const topics = SERIAL_EVENTS.map((type) => scopeTopic(ctx, type, clientId))
  const live = await ctx.pubsub.subscribe(topics) as AsyncIterable<PublishedEvent>
  for await (const message of live) {
    const serialId = String(message.payload.serialId ?? message.aggregateId)
    try {
      yield { type: message.type, serial: await ctx.services.serials.get(ctx.actor, serialId) }
    } catch {
      // The serial is not visible to this subscriber (or vanished): skip the event.
    }
  }
}

const SerialChangeRef = builder.objectRef<{ type: string, serial: SerialView }>('SerialChange').implement({
  fields: (t) => ({
    type: t.exposeString('type', { description: 'Domain event name, e.g. serial.revoked' }),
    serial: t.field({ type: SerialRef, resolve: (c) => c.serial })
  })
})

builder.subscriptionFields((t) => ({
  usageRecorded: t.field({
    type: UsageEventRef,
    authScopes: { authenticated: true },
    args: {
      clientId: t.arg.id(),
      serialId: t.arg.id(),
      after: t.arg.string({ description: `Replay events with a larger seq first (at most ${MAX_REPLAY}), then go live` })
    },
    subscribe: (_root, args, ctx) => {
      let after: number | undefined
      if (args.after != null) {
        after = Number(args.after)
        if (!Number.isSafeInteger(after) || after < 0) throw new ValidationError('Validation failed', [{ field: 'after', message: 'must be a seq value' }])
      }
      return usageStream(ctx, args.clientId, args.serialId, after)
    },
    resolve: (event) => event
  }),
  serialChanged: t.field({
    type: SerialChangeRef,
    authScopes: { authenticated: true },
    args: { clientId: t.arg.id() },
    subscribe: (_root, args, ctx) => serialStream(ctx, args.clientId),
    resolve: (change) => change
  })
}))
