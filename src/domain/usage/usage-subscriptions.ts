// Live usage and serial changes. Serial changes come from the outbox relay over the event bus, so
// a subscriber on any instance sees changes made on every instance; live usage comes from the
// instance's usage feed (usage-feed.ts), which the bus wakes and PostgreSQL orders.
import { builder } from '../../graphql/builder.ts'
import type { GraphQLContext } from '../../graphql/context.ts'
import { eventTopic, isSerialChange, SERIAL_CHANGE_EVENTS, type DomainEventType } from '../../events/domain-events.ts'
import type { PublishedEvent } from '../../events/outbox-relay.ts'
import { canSeeClient, clientScope } from '../../kernel/access.ts'
import { FeatureDisabledError, NotFoundError } from '../../kernel/errors.ts'
import { SerialRef } from '../serials/serial-graphql.ts'
import type { SerialView } from '../serials/serial-service.ts'
import { UsageEventRef } from './usage-graphql.ts'
import { MAX_REPLAY, type UsageEventView } from './usage-service.ts'

const SERIAL_EVENTS = SERIAL_CHANGE_EVENTS

function requireRealTime (ctx: GraphQLContext): void {
  if (!ctx.services.features.realTimeUpdates) throw new FeatureDisabledError('FEATURE_REAL_TIME_UPDATES')
}

/**
 * NOT_FOUND for a client or serial that does not exist, or that the actor may not see (another
 * client's, for a MANAGER): a subscription never waits in silence for events that cannot come.
 */
async function requireVisible (ctx: GraphQLContext, clientId: string | null | undefined, serialId: string | null | undefined): Promise<void> {
  if (clientId) await ctx.services.clients.get(ctx.actor, clientId)
  if (serialId) await ctx.services.serials.get(ctx.actor, serialId)
}

function scopeTopic (ctx: GraphQLContext, type: DomainEventType, clientId: string | null | undefined): string {
  requireRealTime(ctx)
  if (clientId) {
    if (!canSeeClient(ctx.actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
    return eventTopic(type, clientId)
  }
  // Without a clientId a MANAGER still only hears its own client.
  return eventTopic(type, clientScope(ctx.actor) ?? '+')
}

/**
 * In seq order, each event once. With `after`, the events after it that had committed when the
 * subscription opened are read from the database first (at most MAX_REPLAY), then the feed's live
 * events, which all come after those: resuming after the last seq received misses nothing and
 * repeats nothing. A plain iterator rather than a generator, so that closing the subscription ends
 * it at once, even while it waits for an event.
 */
async function openUsageStream (ctx: GraphQLContext, clientId: string | null | undefined, serialId: string | null | undefined, after: number | undefined): Promise<AsyncIterableIterator<UsageEventView>> {
  requireRealTime(ctx)
  await requireVisible(ctx, clientId, serialId)
  // Without a clientId a MANAGER still only hears its own client.
  const filter = { clientId: clientId ?? clientScope(ctx.actor), serialId: serialId ?? null }
  const live = await ctx.services.usage.live(filter)
  let backlog: UsageEventView[] = []
  try {
    if (after !== undefined && after < live.start) backlog = await ctx.services.usage.since(filter, after, MAX_REPLAY, live.start)
  } catch (error) {
    live.close()
    throw error
  }
  /** Live events start after live.start; an `after` beyond it (a seq from recordUsage) skips to it. */
  const skipThrough = Math.max(after ?? -1, live.start)
  let next = 0
  const iterator: AsyncIterableIterator<UsageEventView> = {
    async next () {
      if (next < backlog.length) return { value: backlog[next++]!, done: false }
      backlog = []
      for (;;) {
        const result = await live.events.next()
        if (result.done || result.value.seq > skipThrough) return result
      }
    },
    async return () {
      live.close()
      return { value: undefined, done: true }
    },
    [Symbol.asyncIterator] () { return iterator }
  }
  return iterator
}

async function * serialStream (ctx: GraphQLContext, clientId: string | null | undefined): AsyncGenerator<{ type: string, serial: SerialView }> {
  const topics = SERIAL_EVENTS.map((type) => scopeTopic(ctx, type, clientId))
  const live = await ctx.pubsub.subscribe(topics) as AsyncIterable<PublishedEvent>
  for await (const message of live) {
    if (!isSerialChange(message)) continue
    const serialId = message.payload.serialId
    try {
      yield { type: message.type, serial: await ctx.services.serials.get(ctx.actor, serialId) }
    } catch {
      // The serial is not visible to this subscriber (or vanished): skip the event.
    }
  }
}

const SerialChangeRef = builder.objectRef<{ type: string, serial: SerialView }>('SerialChange').implement({
  description: 'A change to a serial, as a domain event',
  fields: (t) => ({
    type: t.exposeString('type', { description: 'Domain event name, e.g. serial.revoked' }),
    serial: t.field({ description: 'The serial as it is after the change', type: SerialRef, resolve: (c) => c.serial })
  })
})

builder.subscriptionFields((t) => ({
  usageRecorded: t.field({
    description: 'Each usage event as it is stored (needs FEATURE_REAL_TIME_UPDATES)',
    type: UsageEventRef,
    authScopes: { authenticated: true },
    args: {
      clientId: t.arg.id({ description: 'Only this client\'s events (a MANAGER always hears only its own)' }),
      serialId: t.arg.id({ description: 'Only this serial\'s events' }),
      after: t.arg({ type: 'Seq', description: `Resume: the seq of the last event received. Events after it are replayed first (at most ${MAX_REPLAY}), then live ones, in seq order, none twice` })
    },
    // The Seq scalar has already checked `after` (a safe non-negative integer).
    subscribe: (_root, args, ctx) => openUsageStream(ctx, args.clientId, args.serialId, args.after ?? undefined),
    resolve: (event) => event
  }),
  serialChanged: t.field({
    description: 'Each change to a serial: created, updated, suspended, reinstated, revoked (needs FEATURE_REAL_TIME_UPDATES)',
    type: SerialChangeRef,
    authScopes: { authenticated: true },
    args: { clientId: t.arg.id({ description: 'Only this client\'s serials (a MANAGER always hears only its own)' }) },
    subscribe: async (_root, args, ctx) => {
      requireRealTime(ctx)
      await requireVisible(ctx, args.clientId, null)
      return serialStream(ctx, args.clientId)
    },
    resolve: (change) => change
  })
}))
