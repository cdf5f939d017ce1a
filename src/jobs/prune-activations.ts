// Activation rows older than the activation cap's window are of no further use.
import type { DeviceService } from '../domain/devices/device-service.ts'
import type { UnlockedJob } from './job.ts'

export function pruneActivationsJob ({ devices }: { devices: Pick<DeviceService, 'pruneActivations'> }): UnlockedJob {
  return {
    name: 'prune-activations',
    everyMs: 3_600_000,
    async run ({ now }) { await devices.pruneActivations(now) }
  }
}
