// The REST body of a public call that names one device of one serial (release, heartbeat).
export const serialDeviceBody = {
  type: 'object',
  required: ['serialNumber', 'deviceId'],
  properties: {
    serialNumber: { type: 'string', maxLength: 64 },
    deviceId: { type: 'string', minLength: 1, maxLength: 128 }
  }
} as const
