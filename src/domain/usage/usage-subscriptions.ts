// Live usage and serial changes. Events come from the outbox relay over the event bus, so a
// subscriber on any instance sees changes made on every instance.
import { builder } from '../../graphql/builder.ts'
import type { GraphQLContext } from '../../graphql/context.ts'
import { eventTopic, isSerialChange, SERIAL_CHANGE_EVENTS, type DomainEventType } from '../../events/domain-events.ts'
import type { PublishedEvent } from '../../events/outbox-relay.ts'
import { canSeeClient, clientScope } from '../../kernel/access.ts'
import { BUS_STATE_TOPIC, isBusState, type BusState } from '../../infra/event-bus.ts'
import { FeatureDisabledError, NotFoundError } from '../../kernel/errors.ts'
import { SerialRef } from '../serials/serial-graphql.ts'
import type { SerialView } from '../serials/serial-service.ts'
import { UsageEventRef } from './usage-graphql.ts'
import { MAX_REPLAY, type UsageEventView } from './usage-service.ts'

const SERIAL_EVENTS = SERIAL_CHANGE_EVENTS

function scopeTopic (ctx: GraphQLContext, type: DomainEventType, clientId: string | null | undefined): string {
  if (!ctx.services.features.realTimeUpdates) throw new FeatureDisabledError('FEATURE_REAL_TIME_UPDATES')
  if (clientId) {
    if (!canSeeClient(ctx.actor, clientId)) throw new NotFoundError(`client ${clientId} not found`)
    return eventTopic(type, clientId)
  }
  // Without a clientId a MANAGER still only hears its own client.
  return eventTopic(type, clientScope(ctx.actor) ?? '+')
}

/** Delivered seqs remembered per subscriber for de-duplication; older ones count as delivered. */
const SEEN_WINDOW = 10_000

/**
 * Exactly once per subscriber, in seq order, across bus outages. Live messages are trusted only
 * while the bus is heard: when it goes silent the stream stops delivering them, and when it is
 * heard again it reads everything after its cursor from PostgreSQL (in seq order, page by page)
 * before going live again. The relay re-publishes what it could not send, and a message may be
 * heard twice around an outage: delivered seqs are remembered and skipped.
 */
async function * usageStream (ctx: GraphQLContext, clientId: string | null | undefined, serialId: string | null | undefined, after: number | undefined): AsyncGenerator<UsageEventView> {
  const topic = scopeTopic(ctx, 'usage.recorded', clientId)
  const scopeClient = clientId ?? clientScope(ctx.actor)
  // Subscribe before reading the backlog (or the cursor) so nothing falls between the two.
  const live = await ctx.pubsub.subscribe([topic, BUS_STATE_TOPIC]) as AsyncIterable<PublishedEvent | BusState>
  /** Everything up to here was delivered (or predates the subscription). */
  let cursor = after ?? await ctx.services.usage.latestSeq()
  const seen = new Set<number>()
  /** Seqs up to here count as delivered: what the client said it has, then what fell out of `seen`. */
  let forgotten = after ?? -1
  const fresh = (seq: number): boolean => seq > forgotten && !seen.has(seq)
  const delivered = (seq: number): void => {
    seen.add(seq)
    if (seq > cursor) cursor = seq
    if (seen.size > SEEN_WINDOW) {
      const oldest = seen.values().next().value!
      seen.delete(oldest)
      if (oldest > forgotten) forgotten = oldest
    }
  }
  async function * replay (pages: number): AsyncGenerator<UsageEventView> {
    for (let page = 0; page < pages; page++) {
      const events = await ctx.services.usage.since({ clientId: scopeClient, serialId }, cursor, MAX_REPLAY)
      for (const event of events) {
        if (!fresh(event.seq)) continue
        delivered(event.seq)
        yield event
      }
      if (events.length < MAX_REPLAY) return
    }
  }

  if (after !== undefined) yield * replay(1)
  let suspect = false
  for await (const message of live) {
    if (isBusState(message)) {
      if (!message.busHealthy) suspect = true
      else if (suspect) {
        yield * replay(Number.POSITIVE_INFINITY)
        suspect = false
      }
      continue
    }
    // Missed messages are possible: this one comes again from the replay, in its place.
    if (suspect || message.type !== 'usage.recorded') continue
    const event: UsageEventView = message.payload
    if (serialId && event.serialId !== serialId) continue
    if (!fresh(event.seq)) continue
    delivered(event.seq)
    yield event
  }
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
      after: t.arg({ type: 'Seq', description: `Replay events with a larger seq first (at most ${MAX_REPLAY}), then go live` })
    },
    subscribe: (_root, args, ctx) => {
      // The Seq scalar has already checked the value (a safe non-negative integer).
      return usageStream(ctx, args.clientId, args.serialId, args.after ?? undefined)
    },
    resolve: (event) => event
  }),
  serialChanged: t.field({
    description: 'Each change to a serial: created, updated, suspended, reinstated, revoked (needs FEATURE_REAL_TIME_UPDATES)',
    type: SerialChangeRef,
    authScopes: { authenticated: true },
    args: { clientId: t.arg.id({ description: 'Only this client\'s serials (a MANAGER always hears only its own)' }) },
    subscribe: (_root, args, ctx) => serialStream(ctx, args.clientId),
    resolve: (change) => change
  })
}))
