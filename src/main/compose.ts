// Composition root of the domain: every service built from explicit dependencies.
import { createAnalyticsService } from '../domain/analytics/analytics-service.ts'
import { createApiKeyService } from '../domain/api-keys/api-key-service.ts'
import { createAuditService } from '../domain/audit/audit-service.ts'
import { createCertificateService } from '../domain/certificates/certificate-service.ts'
import { createClientService } from '../domain/clients/client-service.ts'
import { createDeviceService } from '../domain/devices/device-service.ts'
import type { Deps } from '../domain/deps.ts'
import { createPolicyService } from '../domain/policies/policy-service.ts'
import { createLifecycleScheduler } from '../jobs/lifecycle-scheduler.ts'
import { createSerialService, type SerialService } from '../domain/serials/serial-service.ts'
import type { ValidationRecorder } from '../domain/serials/validation-recorder.ts'
import { createValidationService } from '../domain/validation/validation-service.ts'
import { createWebhookService } from '../domain/webhooks/webhook-service.ts'
import { createUsageService } from '../domain/usage/usage-service.ts'

export function createServices (deps: Deps, recorder: ValidationRecorder) {
  const devices = createDeviceService(deps)
  const validation = createValidationService({ ...deps, devices, recorder })
  const serials: SerialService = Object.assign(createSerialService(deps), { validate: validation.validate })
  return {
    clients: createClientService(deps),
    serials,
    devices,
    validation,
    policies: createPolicyService(deps),
    scheduler: createLifecycleScheduler({ ...deps, devices }),
    usage: createUsageService({ ...deps, serials }),
    certificates: createCertificateService({ ...deps, serials }),
    apiKeys: createApiKeyService(deps),
    audit: createAuditService(deps),
    analytics: createAnalyticsService(deps),
    webhooks: createWebhookService(deps),
    features: deps.config.features
  }
}

export type Services = ReturnType<typeof createServices>
