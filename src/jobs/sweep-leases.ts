// Frees lapsed leases of floating policies. One batch per run (a serial busy activating culls its
// own leases meanwhile); its caches are invalidated once the cull committed.
import type { DeviceService } from '../domain/devices/device-service.ts'
import { SWEEP_INTERVAL_MS } from '../domain/policies/lease-rules.ts'
import { ADVISORY_LOCKS } from '../infra/advisory-locks.ts'
import type { LockedJob } from './job.ts'

export function sweepLeasesJob ({ devices }: { devices: Pick<DeviceService, 'cullLapsedIn' | 'forgetCulled'> }): LockedJob {
  return {
    name: 'sweep-leases',
    everyMs: SWEEP_INTERVAL_MS,
    lock: ADVISORY_LOCKS.leaseSweep,
    async run ({ tx, now }) {
      const culled = await devices.cullLapsedIn(tx, now)
      return { afterCommit: () => devices.forgetCulled(culled) }
    }
  }
}
