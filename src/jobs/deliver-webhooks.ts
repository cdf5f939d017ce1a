// Sends the webhook deliveries that are due, batch after batch while batches come back full.
// Deliveries are leased with SKIP LOCKED, so every instance runs this without a lock.
import type { WebhookService } from '../domain/webhooks/webhook-service.ts'
import type { UnlockedJob } from './job.ts'

export function deliverWebhooksJob ({ webhooks }: { webhooks: Pick<WebhookService, 'deliverDue'> }): UnlockedJob {
  return {
    name: 'deliver-webhooks',
    everyMs: 1000,
    async run () {
      const { more } = await webhooks.deliverDue()
      return { more }
    }
  }
}
