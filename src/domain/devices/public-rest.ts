// What the public REST routes share (validate, heartbeat, usage, release): the serial number is the
// credential, the answer is JSON for apps.
import { ANY_ROUTE_ERRORS, JSON_BODY_ERRORS, errorResponses } from '../../kernel/error-schema.ts'

/**
 * Route options of a public call: no helmet headers (not pages for browsers), and no second
 * @fastify/rate-limit counter: the per-IP VALIDATE_RATE_LIMIT budget of http/rate-limit.ts applies
 * (shared with the public GraphQL mutations).
 */
export const publicRoute = { helmet: false as const, config: { rateLimit: false as const } }

/** The error answers every public call can give (its JSON body refused, a credential, the limits, a fault). */
export const publicRouteErrors = errorResponses([...JSON_BODY_ERRORS, ...ANY_ROUTE_ERRORS], {
  429: 'RATE_LIMITED: VALIDATE_RATE_LIMIT per IP (shared with the public GraphQL mutations), or this IP produced 20 NOT_FOUND answers within a minute; retry after Retry-After seconds.'
})

/** The body of a public call that names one device of one serial (release, heartbeat). */
export const serialDeviceBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64, description: 'As issued; case, spaces and dashes do not matter.' },
    deviceId: { type: 'string', minLength: 1, maxLength: 128, description: "The app's own device identifier, 1–128 printable ASCII characters." }
  }
} as const
