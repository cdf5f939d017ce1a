// Composition root of the domain: every service built from explicit dependencies.
import { createAnalyticsService } from './analytics/analytics-service.ts'
import { createApiKeyService } from './api-keys/api-key-service.ts'
import { createAuditService } from './audit/audit-service.ts'
import { createCertificateService } from './certificates/certificate-service.ts'
import { createClientService } from './clients/client-service.ts'
import { createDeviceService } from './devices/device-service.ts'
import type { Deps } from './platform/deps.ts'
import { createPolicyService } from './policies/policy-service.ts'
import { createLifecycleScheduler } from './scheduler/lifecycle-scheduler.ts'
import { createSerialService, type SerialService } from './serials/serial-service.ts'
import type { ValidationRecorder } from './serials/validation-recorder.ts'
import { createValidationService } from './validation/validation-service.ts'
import { createWebhookService } from './webhooks/webhook-service.ts'
import { createUsageService } from './usage/usage-service.ts'

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
