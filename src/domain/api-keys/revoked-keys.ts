// API key states (revoked, or known to be active), held in memory on every instance: a JWT is
// checked against the key it was issued from without a database read. Kept current through the event bus; re-read from the
// database at start, whenever the bus is heard again after an outage (messages may have been
// missed), and every minute as a last resort by the refresh-revoked-keys job (e.g. the revoking
// instance died before it could publish). While the bus is silent the set cannot be trusted and callers ask the database.
import { apiKeys } from '../../../schema/index.ts'
import type { Db } from '../../infra/database.ts'
import type { IEventBus } from '../../infra/event-bus.ts'

export const KEY_REVOKED_TOPIC = 'auth/key-revoked'

export type RevokedListener = (keyId: string) => void

export interface RevokedKeySet {
  /** true = revoked, false = active, undefined = memory cannot answer now (ask the database). */
  known (keyId: string): boolean | undefined
  /** Records what the database said about a key memory could not answer for. */
  remember (keyId: string, active: boolean): void
  /** Records a committed revocation here and tells every other instance. */
  revoked (keyId: string): Promise<void>
  /** Fires once per instance for each key revoked from now on (wherever it was revoked). */
  onRevoked (listener: RevokedListener): () => void
  /** Re-reads every key's state from the database (the periodic safety net calls this). */
  load (): Promise<void>
  start (): Promise<void>
  stop (): Promise<void>
}

export function createRevokedKeySet ({ db, bus, onError = () => {} }: { db: Db, bus: IEventBus, onError?: (error: unknown) => void }): RevokedKeySet {
  const ids = new Set<string>()
  /** Keys seen in the database without revokedAt. Never holds a revoked id. */
  const active = new Set<string>()
  const listeners = new Set<RevokedListener>()
  /** Revocations whose publish failed (bus down): sent again once the bus is heard. */
  const unsent = new Set<string>()
  let loaded = false
  let started = false
  let unsubscribe = async () => {}
  let stopHealth = () => {}

  function add (keyId: string): void {
    active.delete(keyId)
    if (ids.has(keyId)) return
    ids.add(keyId)
    for (const listener of [...listeners]) {
      try { listener(keyId) } catch (error) { onError(error) }
    }
  }

  async function load (): Promise<void> {
    const rows = await db.select({ id: apiKeys.id, revokedAt: apiKeys.revokedAt }).from(apiKeys)
    const fresh = new Set<string>()
    for (const row of rows) {
      if (row.revokedAt) add(row.id)
      else fresh.add(row.id)
    }
    active.clear()
    // A revocation heard while the query ran wins over the older snapshot.
    for (const id of fresh) if (!ids.has(id)) active.add(id)
    loaded = true
  }

  async function publish (keyId: string): Promise<void> {
    // A silent bus would hold the revocation until the publish times out; resync() sends it.
    if (!bus.healthy()) { unsent.add(keyId); return }
    try {
      await bus.publish(KEY_REVOKED_TOPIC, { keyId })
      unsent.delete(keyId)
    } catch {
      unsent.add(keyId)
    }
  }

  function resync (): void {
    // Until the reload completes, memory may lack revocations sent while the bus was silent.
    loaded = false
    load().catch(onError)
    for (const keyId of [...unsent]) void publish(keyId)
  }

  return {
    known (keyId) {
      if (!loaded || !bus.healthy()) return undefined
      if (ids.has(keyId)) return true
      return active.has(keyId) ? false : undefined
    },
    remember (keyId, isActive) {
      if (!isActive) add(keyId)
      else if (!ids.has(keyId)) active.add(keyId)
    },
    async revoked (keyId) {
      add(keyId)
      await publish(keyId)
    },
    onRevoked (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    load,
    async start () {
      if (started) return
      started = true
      const subscribed = bus.subscribe(KEY_REVOKED_TOPIC, (payload) => {
        const keyId = (payload as { keyId?: unknown } | null)?.keyId
        if (typeof keyId === 'string') add(keyId)
      }).then((fn) => { unsubscribe = fn })
      stopHealth = bus.onHealthChange((healthy) => { if (healthy) resync() })
      // Redis down at start: the subscription completes once it reconnects; meanwhile known()
      // answers undefined (the bus is not healthy) and callers read the database.
      let wait: NodeJS.Timeout | undefined
      await Promise.race([subscribed, new Promise((resolve) => { wait = setTimeout(resolve, 2000) })])
      clearTimeout(wait)
      await load()
    },
    async stop () {
      stopHealth()
      await unsubscribe().catch(() => {})
    }
  }
}
