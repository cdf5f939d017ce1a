// Writes the validation counts, device last-seen times and renewed leases the recorder aggregated
// in memory (its own errors go to its onError; a failed write is not retried).
import { FLUSH_INTERVAL_MS, type ValidationRecorder } from '../domain/validation/validation-recorder.ts'
import type { UnlockedJob } from './job.ts'

export function flushValidationStatsJob ({ recorder }: { recorder: Pick<ValidationRecorder, 'flush'> }): UnlockedJob {
  return {
    name: 'flush-validation-stats',
    everyMs: FLUSH_INTERVAL_MS,
    async run () { await recorder.flush() }
  }
}
