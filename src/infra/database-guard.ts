// Keeps an unavailable PostgreSQL from holding requests. postgres.js waits for ever on a server
// that stopped answering (a black-holed network, a frozen host): a statement sent on an open
// connection never settles, statements queued behind the pool's busy connections never get one,
// and a connection reset while connecting is retried with the same statement, again and again.
// The guard bounds each of these:
// - every statement and transaction is tracked from the moment it is issued;
// - one still waiting for a pool connection after acquireMs fails (its text replaced by a no-op,
//   so that it cannot run later, after its caller was told it failed);
// - one unanswered for answerMs makes the guard check, on a fresh connection, whether the server
//   still answers. A server that does (a slow statement) is left alone. One that does not is
//   unavailable: the pool's sockets are destroyed (their statements fail at once), statements
//   waiting for a connection fail, and new statements fail at once without being sent, until a
//   probe (every PROBE_EVERY_MS meanwhile) gets an answer again.
// Every failure is a ServiceUnavailableError or a driver error that toContractError maps to one.
//
// Transactions whose connection is lost (destroyed here, or reset by a restarting server) must not
// let postgres.js send its ROLLBACK or COMMIT on it: 3.4.9 then writes to a null socket from a
// timer and the whole process dies with an uncaught TypeError (porsager/postgres#1208). Their
// body is left pending instead; postgres.js's begin() rejects on its own as the connection closes.
import { connect, type Socket } from 'node:net'
import type { DatabaseTimeouts } from '../config/config.ts'
import { ServiceUnavailableError, unavailableReason } from '../kernel/errors.ts'

/** While unavailable, how often the server is probed again, in ms. */
const PROBE_EVERY_MS = 500
/** How often waiting statements are looked at, in ms. */
const SWEEP_EVERY_MS = 100

/** What the guard reads and writes on a postgres.js Query (3.4: a Promise with these fields). */
interface PgQuery {
  /** The connection's backend key once the statement was handed to a connection; null before. */
  state: unknown
  strings: string[]
  args: unknown[]
  options: Record<string, unknown>
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

interface Waiter {
  since: number
  query?: PgQuery
  /** A transaction not yet begun: fails it (it then rolls back as soon as it does begin). */
  abandon?: (error: Error) => void
}

/** Options postgres.js hands its `socket` factory. */
interface SocketOptions { host: string[], port: number[], path?: string | false }

interface Log { warn (obj: object, msg: string): void, info (obj: object, msg: string): void }

/** One transaction, shared by its statements and savepoints. */
export interface TxState {
  /** Its connection is gone: nothing more may be sent on it, not even ROLLBACK. */
  lost: boolean
  /** Resolves once postgres.js's begin() settled (for a lost connection: once it closed). */
  settled: Promise<void>
  isSettled: boolean
}

/** Errors after which a transaction's connection is gone or going (FATAL: the server closes it). */
const LOST_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT',
  'ECONNABORTED', '57P01', '57P02', '57P03', '57P05', '25P03', '25P04'])

function connectionLost (error: unknown, depth = 0): boolean {
  const e = error as { code?: unknown, severity?: unknown, cause?: unknown } | null
  if (!e || typeof e !== 'object' || depth > 3) return false
  if (e.severity === 'FATAL' || e.severity === 'PANIC') return true
  if (typeof e.code === 'string' && LOST_CODES.has(e.code)) return true
  return connectionLost(e.cause, depth + 1)
}

const NEVER = new Promise<never>(() => {})

export interface DatabaseGuard {
  /** The postgres.js `socket` option: plain TCP sockets the guard can destroy when the server is gone. */
  socket (options: SocketOptions): Socket
  /** Rejects at once while the server is unavailable, or when the transaction's connection is lost. */
  refusal (tx?: TxState): ServiceUnavailableError | undefined
  /** Tracks a statement from now until it settles. */
  track (query: unknown, tx?: TxState): void
  /**
   * Runs a transaction under the acquire bound: `begin` calls postgres.js `begin` with the body it
   * is given; `fn` is the caller's body, given the transaction's state.
   */
  transaction<T> (begin: (body: (tx: unknown) => Promise<unknown>) => Promise<T>, fn: (tx: unknown, state: TxState) => Promise<unknown>): Promise<T>
  /** A savepoint's body inside `state`'s transaction: the same care for a lost connection. */
  savepoint (state: TxState, fn: () => Promise<unknown>): Promise<unknown>
  /** Why the server counts as unavailable, and since when (epoch ms); undefined while it answers. */
  readonly down: { since: number, reason: string } | undefined
  close (): void
}

export interface GuardOptions {
  /** `PostgreSQL` or `PostgreSQL replica`: named in logs and messages. */
  what: string
  timeouts: DatabaseTimeouts
  /** One round trip on a fresh connection (not the pool's): resolves when the server answered. */
  probe: () => Promise<void>
  log?: Log
}

/** A probe failure the server itself answered (too many connections, bad password…): it is alive. */
function serverAnswered (error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57P')
}

export function createDatabaseGuard ({ what, timeouts, probe, log }: GuardOptions): DatabaseGuard {
  const { answerMs, acquireMs, connectMs } = timeouts
  // Insertion order is age order: the sweep stops at the first waiter too young to matter.
  const waiters = new Set<Waiter>()
  const sockets = new Set<Socket>()
  let down: { since: number, reason: string } | undefined
  let probing: Promise<void> | undefined
  let lastProbeAt = 0
  /** Start of the last probe that got an answer: statements overdue before it are merely slow. */
  let aliveAt = 0
  let timer: NodeJS.Timeout | undefined
  let nextHost = 0
  let closed = false
  /** Transactions whose body runs: their connections are among the sockets destroyed by markDown. */
  const open = new Set<TxState>()

  const unavailable = () => new ServiceUnavailableError('The database is unavailable; retry later')

  function arm () {
    if (timer || closed) return
    timer = setInterval(sweep, SWEEP_EVERY_MS)
    timer.unref()
  }

  function giveUp (waiter: Waiter, error: Error) {
    waiters.delete(waiter)
    if (waiter.query) {
      // Not yet sent: make sure it never is (postgres.js may still hand it to a connection that
      // opens later, and a cancelled query would leave that connection stuck), then fail it.
      waiter.query.strings = ['select 1']
      waiter.query.args = []
      waiter.query.options = { ...waiter.query.options, simple: true, prepare: false }
      waiter.query.reject(error)
    } else waiter.abandon?.(error)
  }

  function markDown (reason: string) {
    if (closed) return
    if (!down) {
      down = { since: Date.now(), reason }
      log?.warn({ reason }, `${what} is unavailable: statements fail at once (503) until it answers again`)
    } else down.reason = reason
    for (const waiter of [...waiters]) {
      if (waiter.abandon || (waiter.query && waiter.query.state == null)) giveUp(waiter, unavailable())
    }
    // Statements sent on these sockets fail now (CONNECTION_CLOSED) instead of waiting for ever.
    for (const tx of open) tx.lost = true
    for (const socket of sockets) socket.destroy()
    arm()
  }

  /**
   * The body's outcome for postgres.js, which then sends COMMIT or ROLLBACK, unless the connection
   * is lost: then nothing is returned until begin() settled (the close rejects it), and after that
   * never, so that neither is sent on the dead connection. A connection that turns out to be alive
   * after connectMs + answerMs gets its ROLLBACK after all.
   */
  async function settleBody (state: TxState, fn: () => Promise<unknown>): Promise<unknown> {
    let result: unknown
    let failure: unknown
    let failed = false
    try { result = await fn() } catch (error) { failure = error; failed = true }
    if (state.lost || (failed && connectionLost(failure))) {
      state.lost = true
      let wait: NodeJS.Timeout | undefined
      await Promise.race([state.settled, new Promise((resolve) => { wait = setTimeout(resolve, connectMs + answerMs); wait.unref() })])
      clearTimeout(wait)
      if (state.isSettled) return NEVER
      if (!failed) { failed = true; failure = unavailable() }
    }
    if (failed) throw failure
    return result
  }

  function runProbe () {
    if (probing || closed) return
    const startedAt = lastProbeAt = Date.now()
    let limit: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      limit = setTimeout(() => reject(new Error(`no answer within ${connectMs + answerMs} ms`)), connectMs + answerMs)
    })
    probing = Promise.race([probe(), timedOut])
      .then(() => true, (error: unknown) => {
        if (serverAnswered(error)) return true
        markDown(unavailableReason(error) ?? (error as Error).message)
        return false
      })
      .then((alive) => {
        if (!alive) return
        aliveAt = startedAt
        if (down) log?.info({ unavailableMs: Date.now() - down.since }, `${what} answers again`)
        down = undefined
      })
      .finally(() => { clearTimeout(limit); probing = undefined })
  }

  function sweep () {
    const now = Date.now()
    let overdue = false
    for (const waiter of waiters) {
      const age = now - waiter.since
      if (age < Math.min(answerMs, acquireMs)) break
      const waitingForConnection = waiter.abandon !== undefined || (waiter.query !== undefined && waiter.query.state == null)
      if (waitingForConnection && age >= acquireMs) {
        giveUp(waiter, new ServiceUnavailableError(`No database connection became free within ${acquireMs} ms; retry later`))
        continue
      }
      if (age >= answerMs && waiter.since + answerMs > aliveAt) overdue = true
    }
    if (overdue || (down && now - lastProbeAt >= PROBE_EVERY_MS)) runProbe()
    if (waiters.size === 0 && !down && !probing && timer) { clearInterval(timer); timer = undefined }
  }

  return {
    get down () { return down },
    socket (options) {
      const i = nextHost++ % Math.max(options.host.length, 1)
      const host = options.host[i] ?? 'localhost'
      const port = options.port[i] ?? options.port[0] ?? 5432
      const socket = options.path ? connect(options.path) : connect({ host, port })
      // postgres.js names these in its connection errors.
      Object.assign(socket, { host, port })
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      return socket
    },
    refusal: (tx) => down || tx?.lost ? unavailable() : undefined,
    track (query, tx) {
      const q = query as PgQuery
      const waiter: Waiter = { since: Date.now(), query: q }
      waiters.add(waiter)
      const { resolve, reject } = q
      q.resolve = (value) => { waiters.delete(waiter); resolve(value) }
      q.reject = (error) => {
        waiters.delete(waiter)
        if (tx && connectionLost(error)) tx.lost = true
        reject(error)
      }
      arm()
    },
    transaction<T> (begin: (body: (tx: unknown) => Promise<unknown>) => Promise<T>, fn: (tx: unknown, state: TxState) => Promise<unknown>): Promise<T> {
      if (down) return Promise.reject(unavailable())
      let settle = () => {}
      const state: TxState = { lost: false, isSettled: false, settled: new Promise<void>((resolve) => { settle = resolve }) }
      return new Promise<T>((resolve, reject) => {
        let abandoned: Error | undefined
        const waiting: Waiter = { since: Date.now(), abandon: (error) => { abandoned = error; reject(error) } }
        // After the body: the COMMIT (or ROLLBACK) postgres.js sends is watched like a statement.
        let ending: Waiter | undefined
        waiters.add(waiting)
        arm()
        const body = async (tx: unknown) => {
          waiters.delete(waiting)
          // Begun after the caller was told it failed: roll back at once (the connection is fine).
          if (abandoned) throw abandoned
          open.add(state)
          const outcome = await settleBody(state, () => fn(tx, state))
          ending = { since: Date.now() }
          waiters.add(ending)
          arm()
          return outcome
        }
        begin(body).then(resolve, reject).finally(() => {
          // Settled before its body did: the connection closed under it (begin() raced onclose).
          state.lost = true
          state.isSettled = true
          settle()
          open.delete(state)
          waiters.delete(waiting)
          if (ending) waiters.delete(ending)
        })
      })
    },
    savepoint: (state, fn) => settleBody(state, fn),
    close () {
      closed = true
      if (timer) clearInterval(timer)
      timer = undefined
      // Statements still tracked settle with the pool (postgres.js ends its connections).
      waiters.clear()
    }
  }
}
