// Every PostgreSQL advisory-lock key the service takes, named once. The numbers are part of the
// protocol between instances: an instance of an older version takes the same number for the same
// work, so a value here is never changed or reused, only added.
export const ADVISORY_LOCKS = {
  /** Session lock around migrate(): instances starting together migrate one at a time. */
  migration: 727_001,
  /** Appends to the audit hash chain, so the chain stays linear across instances. */
  auditChain: 727_002,
  /** The outbox relay: one relay transaction at a time across instances, in commit order. */
  outboxRelay: 727_003,
  /** The lapsed-lease sweep (sweep-leases job): one instance culls at a time. */
  leaseSweep: 727_014,
  /** serial.expiring / serial.expired notices (sweep-expiries job): one instance at a time. */
  expirySweep: 727_015,
  /** Creating, attaching and dropping usage_events partitions. */
  usagePartitions: 727_016,
  /** rebuildRollups: two rebuilds at once would insert the same rollup rows twice. */
  rollupRebuild: 727_017
} as const

export type AdvisoryLockName = keyof typeof ADVISORY_LOCKS
/** One of the keys above (a number not listed here does not type-check). */
export type AdvisoryLock = typeof ADVISORY_LOCKS[AdvisoryLockName]
