// What the public REST routes share (validate, heartbeat, usage, release): the serial number is the
// credential, the answer is JSON for apps.

/**
 * Route options of a public call: no helmet headers (not pages for browsers), and no second
 * @fastify/rate-limit counter: the per-IP VALIDATE_RATE_LIMIT budget of http/rate-limit.ts applies
 * (shared with the public GraphQL mutations).
 */
export const publicRoute = { helmet: false as const, config: { rateLimit: false as const } }

/** The body of a public call that names one device of one serial (release, heartbeat). */
export const serialDeviceBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64 },
    deviceId: { type: 'string', minLength: 1, maxLength: 128 }
  }
} as const
