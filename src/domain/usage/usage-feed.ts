// The live usage feed: usage events for subscribers in seq order, each once, released up to a
// watermark below which no transaction can still add a row. One feed per instance, shared by every
// usageRecorded subscription on it. The event bus wakes it, and spares it a read of PostgreSQL for
// a range whose every event it brought; the order and completeness come from PostgreSQL.
//
// Why a watermark: seqs are taken when a row is inserted, not when it commits. Two transactions
// commit in the other order of their seqs (concurrent group commits on two instances, a keyed
// request whose transaction also writes its idempotency row), and usage with an idempotency key
// is published by the relay, later than usage without one. Delivering what the bus brings, as it
// comes, let a subscriber see seq 12 before 11; resuming after 12 then lost 11 for good.
//
// The watermark, from PostgreSQL alone (nothing on the hot path): every usage seq is taken by
// nextval in an INSERT into usage_events, which holds RowExclusiveLock on usage_events from before
// it takes the seq until its transaction ends. One statement reads the sequence's last value S
// and then (a subquery depending on it, so after) the transactions holding that lock, H. A seq at
// or below S was taken by a transaction that had ended when H was read, or is in H. Once a later
// reading shows none of H, every seq up to S is committed or will never be (rolled back): S is
// the watermark, and reading `seq > released and seq <= S` gives the rows that will ever be there,
// in order. This needs the sequence to hand out one value at a time (CACHE 1, the default): a
// cached block would let a session use a seq below S in a transaction that takes the lock later.
// One exception, bounded: a transaction holding the lock for more than HOLD_MAX_MS is no longer
// waited for (see Watermark).
import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { eventTopic } from '../../events/domain-events.ts'
import { queryRows, type Executor } from '../../infra/database.ts'
import type { IEventBus } from '../../infra/event-bus.ts'
import { MAX_PENDING_EVENTS } from '../../graphql/pubsub.ts'
import { ServiceUnavailableError } from '../../kernel/errors.ts'

/** What a subscription asks for; null = any. */
export interface FeedFilter { clientId: string | null, serialId: string | null }
/** What one read must cover for every open subscription: all rows, or those of these clients or serials. */
export interface FeedScope { all: boolean, clientIds: string[], serialIds: string[] }
export interface FeedEvent { seq: number, clientId: string, serialId: string }

/** Reads rows with after < seq <= through in scope, in seq order, at most `limit`. */
export type FeedRead<T extends FeedEvent> = (scope: FeedScope, after: number, through: number, limit: number) => Promise<T[]>

export interface LiveUsage<T> {
  /**
   * Every row with a seq at or below this had committed (or never will) when the subscription
   * opened; `events` brings the rows of its filter after it, in seq order, each once.
   */
  readonly start: number
  readonly events: AsyncIterableIterator<T>
  close (): void
}

export interface UsageFeed<T> {
  open (filter: FeedFilter): Promise<LiveUsage<T>>
  /**
   * A seq such that every usage row at or below it is committed or never will be: a cursor to hand
   * out (a query limited to seq <= it, then usageRecorded after it, miss nothing). Fresh when the
   * transactions holding seqs end within `timeoutMs`; else the last one known (lower, still
   * safe); else SERVICE_UNAVAILABLE.
   */
  watermark (timeoutMs?: number): Promise<number>
  close (): Promise<void>
}

/** Rows read per statement. */
const PAGE = 1000
/** Pause between readings while transactions holding seqs are still open, in ms. */
const TICK_MS = 2
/** The pause once the same transactions have held the watermark for SLOW_AFTER_MS, in ms. */
const SLOW_TICK_MS = 20
const SLOW_AFTER_MS = 100
/** Readings without a wake-up, in ms: a safety net while the bus is heard, the only source while it is not. */
const POLL_MS = 1000
const SILENT_POLL_MS = 100
/** Events heard and kept while the watermark is behind; past it they are read from the database. */
const MAX_HEARD = 20_000
/** A transaction holding seqs for longer than this is no longer waited for (see Watermark), in ms. */
export const HOLD_MAX_MS = 30_000
/** Readings waiting for their transactions to end; more only delay the watermark. */
const MAX_PENDING = 64
/** A watermark held back this long is logged (at most once per such period), as are failed readings, in ms. */
const WARN_EVERY_MS = 10_000
/**
 * Events a slow subscriber may have queued: past it, its stream ends and the client resumes with
 * after: its last seq (nothing is lost, the rows are in the database). Ten times what other
 * subscriptions queue (MAX_PENDING_EVENTS), since a held-back watermark releases in pages of PAGE.
 */
const MAX_QUEUED = 10 * MAX_PENDING_EVENTS

interface Reading { seq: number, holders: string[] }

async function read (db: Executor): Promise<Reading> {
  const [row] = await queryRows<{ seq: string | number, holders: string[] | null }>(db, sql`
    select s.last_value - case when s.is_called then 0 else 1 end as seq,
      array(select l.virtualtransaction from pg_locks l
        where l.locktype = 'relation' and l.relation = 'usage_events'::regclass and l.mode = 'RowExclusiveLock' and l.granted
          and l.database = (select oid from pg_database where datname = current_database())
          and s.last_value is not null) as holders
    from usage_events_seq_seq s`)
  return { seq: Number(row?.seq ?? 0), holders: row?.holders ?? [] }
}

/**
 * Turns readings into a watermark: the highest seq known to have no transaction left open below
 * it. A transaction seen holding the lock for longer than `holdMaxMs` is no longer waited for: a
 * transaction of this service that stays open that long has lost its connection (it will roll
 * back when the server notices) or is a bulk import; rows it still commits below the watermark
 * are stored and relayed, but not streamed. The only exception to "every row, in order".
 */
export class Watermark {
  /** -1 until a first reading resolves. */
  resolved = -1
  private pending: Reading[] = []
  /** When the oldest pending reading was taken (performance.now()). */
  private oldestAt = 0
  /** When each transaction holding the lock now was first seen holding it. */
  private since = new Map<string, number>()
  /** The highest sequence value read. */
  private latest = -1
  /** Transactions no longer waited for (while they still hold the lock). */
  private given = new Set<string>()
  /** Of those, the ones takeAbandoned() has not reported yet. */
  private abandoned: string[] = []

  constructor (private readonly holdMaxMs = HOLD_MAX_MS) {}

  /** Takes a reading in (readings in the order they were taken); returns the watermark. */
  observe (reading: Reading, now = performance.now()): number {
    this.latest = Math.max(this.latest, reading.seq)
    const open = new Set<string>()
    const since = new Map<string, number>()
    for (const h of reading.holders) {
      const first = this.since.get(h) ?? now
      since.set(h, first)
      if (now - first <= this.holdMaxMs) open.add(h)
      else if (!this.given.has(h)) { this.given.add(h); this.abandoned.push(h) }
    }
    this.since = since
    for (const h of this.given) if (!since.has(h)) this.given.delete(h)
    this.pending = this.pending.filter((p) => {
      if (p.holders.some((h) => open.has(h))) return true
      if (p.seq > this.resolved) this.resolved = p.seq
      return false
    })
    if (open.size === 0) this.resolved = Math.max(this.resolved, reading.seq)
    else if (reading.seq > this.resolved && this.pending.length < MAX_PENDING && (this.pending.at(-1)?.seq ?? -1) < reading.seq) {
      // An older reading with the same seq resolves no later than this one: only a higher seq is kept.
      if (this.pending.length === 0) this.oldestAt = now
      this.pending.push({ seq: reading.seq, holders: [...open] })
    }
    this.pending = this.pending.filter((p) => p.seq > this.resolved)
    return this.resolved
  }

  /** Whether the watermark is behind the sequence as last read (transactions still to end, or a reading to take). */
  get waiting (): boolean { return this.pending.length > 0 || this.latest > this.resolved }
  /** How long the watermark has waited on its oldest reading, in ms. */
  waitedMs (now = performance.now()): number { return this.pending.length > 0 ? now - this.oldestAt : 0 }
  /** The transactions the oldest reading waits on. */
  get blockers (): string[] { return this.pending[0]?.holders ?? [] }
  /** The transactions given up on since the last call. */
  takeAbandoned (): string[] { return this.abandoned.splice(0) }
}

/** A subscriber's queue: pushed by the feed, read by the subscription. */
class Queue<T> implements AsyncIterableIterator<T> {
  private items: T[] = []
  private head = 0
  private waiter: ((result: IteratorResult<T>) => void) | undefined
  private ended = false
  constructor (private readonly onEnd: () => void) {}

  push (item: T): void {
    if (this.ended) return
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w({ value: item, done: false })
    } else if (this.items.length - this.head >= MAX_QUEUED) {
      this.end()
    } else {
      this.items.push(item)
    }
  }

  end (): void {
    if (this.ended) return
    this.ended = true
    this.items = []
    this.head = 0
    this.onEnd()
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w({ value: undefined, done: true })
    }
  }

  next (): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) {
      const value = this.items[this.head++]!
      if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0 }
      return Promise.resolve({ value, done: false })
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => { this.waiter = resolve })
  }

  return (): Promise<IteratorResult<T>> {
    this.end()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator] (): AsyncIterableIterator<T> { return this }
}

interface Subscriber<T> { filter: FeedFilter, start: number, queue: Queue<T> }

const matches = (filter: FeedFilter, event: FeedEvent) =>
  (filter.clientId === null || event.clientId === filter.clientId) && (filter.serialId === null || event.serialId === filter.serialId)

function scopeOf<T> (subscribers: Iterable<Subscriber<T>>): FeedScope {
  const scope: FeedScope = { all: false, clientIds: [], serialIds: [] }
  const clients = new Set<string>()
  const serials = new Set<string>()
  for (const { filter } of subscribers) {
    if (filter.clientId !== null) clients.add(filter.clientId)
    else if (filter.serialId !== null) serials.add(filter.serialId)
    else scope.all = true
  }
  return { ...scope, clientIds: [...clients], serialIds: [...serials] }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
/** Readings come fast while transactions end fast, and slower while one stays open. */
const pauseFor = (mark: Watermark) => mark.waitedMs() > SLOW_AFTER_MS ? SLOW_TICK_MS : TICK_MS

export interface UsageFeedDeps<T extends FeedEvent> {
  db: Executor
  bus: IEventBus
  log: FastifyBaseLogger
  read: FeedRead<T>
  /** The event a bus message carries (a published usage.recorded), or undefined. */
  fromBus: (message: unknown) => T | undefined
}

/**
 * Runs while it has subscribers: on every usage event heard on the bus (from any instance), on a
 * slow poll, and every TICK_MS while transactions holding seqs are open, it takes a reading and
 * advances the watermark. The rows up to it go into the subscribers' queues: from what the bus
 * brought when it brought every seq of the range, else read from PostgreSQL (a seq the relay has
 * not published yet, one rolled back, a message missed while the bus was silent). Cost per
 * instance, whatever the number of subscribers: one reading per wake-up (coalesced), and a read
 * only for a range with a hole; nothing on the usage write path.
 */
export function createUsageFeed<T extends FeedEvent> ({ db, bus, log, read: readRows, fromBus }: UsageFeedDeps<T>): UsageFeed<T> {
  const subscribers = new Set<Subscriber<T>>()
  /** Events heard on the bus and not yet released, by seq (every client's). */
  const heard = new Map<number, T>()
  /** One per start of the feed: a loop of an earlier start stops at its next step. */
  let epoch = 0
  let mark = new Watermark()
  /** Rows up to here went to every subscriber that was open then; undefined until the first reading resolves. */
  let released: number | undefined
  /** The upper bound of the read under way: a subscriber opening meanwhile starts after it. */
  let reading: number | undefined
  let wanted = false
  let running: Promise<void> | undefined
  let ready: Promise<void> | undefined
  let readyNow: (() => void) | undefined
  let pollTimer: NodeJS.Timeout | undefined
  let stopBus: (() => Promise<void>) | undefined
  let stopHealth: (() => void) | undefined
  let lastStuckWarning = 0
  let lastErrorLog = Number.NEGATIVE_INFINITY
  /** The highest watermark resolved so far, by the loop or watermark(): a fact that stays true. */
  let known = -1
  let closed = false

  function wake (): void {
    wanted = true
    if (running || subscribers.size === 0) return
    const mine = epoch
    running = loop(mine).finally(() => {
      running = undefined
      // A wake-up for a newer start may have come while this loop was ending.
      if (wanted && subscribers.size > 0) wake()
    })
  }

  function schedulePoll (): void {
    clearTimeout(pollTimer)
    if (subscribers.size === 0 || closed) return
    pollTimer = setTimeout(() => { wake(); schedulePoll() }, bus.healthy() ? POLL_MS : SILENT_POLL_MS)
    pollTimer.unref()
  }

  async function loop (mine: number): Promise<void> {
    let first = true
    while (mine === epoch && subscribers.size > 0 && (wanted || mark.waiting || (released ?? -1) < mark.resolved)) {
      // Wake-ups of a busy moment share one reading; a quiet moment's first one is read at once.
      if (!first) await sleep(pauseFor(mark))
      first = false
      wanted = false
      try {
        const now = await read(db)
        // A reading only resolves readings taken before it: never one of an earlier start's loop.
        if (mine !== epoch) return
        known = Math.max(known, mark.observe(now))
        warnIfStuck()
        const abandoned = mark.takeAbandoned()
        if (abandoned.length > 0) log.error({ transactions: abandoned, holdMaxMs: HOLD_MAX_MS }, 'live usage no longer waits for transactions open too long: rows they commit below the watermark will not be streamed (they are stored and relayed)')
        if (released === undefined) {
          if (mark.resolved < 0) continue
          released = mark.resolved
          forget(released)
          readyNow?.()
          continue
        }
        while (mine === epoch && released < mark.resolved && subscribers.size > 0) {
          const through = mark.resolved
          let rows = fromHeard(released, through)
          let upTo = through
          if (!rows) {
            reading = through
            rows = await readRows(scopeOf(subscribers), released, through, PAGE)
            if (mine !== epoch) return
            if (rows.length === PAGE) upTo = rows.at(-1)!.seq
          }
          for (const row of rows) {
            for (const s of subscribers) if (row.seq > s.start && matches(s.filter, row)) s.queue.push(row)
          }
          released = upTo
          reading = undefined
          forget(upTo)
        }
      } catch (error) {
        reading = undefined
        if (mine !== epoch) return
        if (performance.now() - lastErrorLog > WARN_EVERY_MS) {
          lastErrorLog = performance.now()
          log.warn({ err: error }, 'live usage feed: reading failed; retrying')
        }
        await sleep(SILENT_POLL_MS)
        wanted = true
      }
    }
  }

  /** The events of (after, through] when the bus brought each of them, in seq order; else undefined. */
  function fromHeard (after: number, through: number): T[] | undefined {
    if (through - after > heard.size || through - after > PAGE) return undefined
    const rows: T[] = []
    for (let seq = after + 1; seq <= through; seq++) {
      const event = heard.get(seq)
      if (!event) return undefined
      rows.push(event)
    }
    return rows
  }

  function forget (upTo: number): void {
    for (const seq of heard.keys()) if (seq <= upTo) heard.delete(seq)
  }

  function hear (message: unknown): void {
    const event = fromBus(message)
    // Only a hint: a message lost, late or twice changes nothing but whether a read is needed.
    if (event && (released === undefined || event.seq > released) && heard.size < MAX_HEARD) heard.set(event.seq, event)
  }

  function warnIfStuck (): void {
    const waited = mark.waitedMs()
    const now = performance.now()
    if (waited > WARN_EVERY_MS && now - lastStuckWarning > WARN_EVERY_MS) {
      lastStuckWarning = now
      log.warn({ transactions: mark.blockers, waitedMs: Math.round(waited) }, 'live usage held back: transactions holding usage seqs are still open')
    }
  }

  async function start (): Promise<void> {
    const mine = ++epoch
    mark = new Watermark()
    released = undefined
    ready = new Promise<void>((resolve) => { readyNow = resolve })
    const unsubscribe = await bus.subscribe(eventTopic('usage.recorded', '+'), (message) => {
      if (mine !== epoch) return
      hear(message)
      wake()
    })
    const offHealth = bus.onHealthChange(() => { if (mine === epoch) { wake(); schedulePoll() } })
    if (mine !== epoch) { offHealth(); await unsubscribe(); return }
    stopBus = unsubscribe
    stopHealth = offHealth
    schedulePoll()
    wake()
  }

  function stop (): void {
    epoch++
    clearTimeout(pollTimer)
    stopHealth?.()
    const unsubscribe = stopBus
    stopBus = stopHealth = undefined
    // Openers still waiting for the first reading look again (and find themselves closed).
    readyNow?.()
    ready = readyNow = undefined
    released = reading = undefined
    heard.clear()
    void unsubscribe?.().catch(() => {})
  }

  function leave (subscriber: Subscriber<T>): void {
    if (subscribers.delete(subscriber) && subscribers.size === 0) stop()
  }

  return {
    async watermark (timeoutMs = 2000) {
      // Its own readings: interleaved with the loop's (another connection) they would be out of order.
      const own = new Watermark()
      const end = performance.now() + timeoutMs
      for (;;) {
        known = Math.max(known, own.observe(await read(db)))
        if (!own.waiting && own.resolved >= 0) return known
        if (performance.now() > end) {
          if (known >= 0) return known
          throw new ServiceUnavailableError(`usage seqs are still being written by transactions ${own.blockers.join(', ')}; retry later`)
        }
        await sleep(pauseFor(own))
      }
    },
    async open (filter) {
      if (closed) throw new Error('the live usage feed is closed')
      // Counted from now, so a subscriber waiting for the first reading keeps the feed running;
      // it receives nothing until its start is known.
      const subscriber: Subscriber<T> = { filter, start: Number.POSITIVE_INFINITY, queue: new Queue<T>(() => leave(subscriber)) }
      const { queue } = subscriber
      const first = subscribers.size === 0
      subscribers.add(subscriber)
      try {
        if (first) await start()
        while (released === undefined) {
          if (!subscribers.has(subscriber)) throw new Error('closed before it started')
          if (!ready) await start()
          await ready
        }
      } catch (error) {
        queue.end()
        throw error
      }
      subscriber.start = reading ?? released
      return { start: subscriber.start, events: queue, close: () => queue.end() }
    },
    async close () {
      closed = true
      for (const s of [...subscribers]) s.queue.end()
      stop()
      await running
    }
  }
}
