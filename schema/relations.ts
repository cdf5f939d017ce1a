import { defineRelations } from 'drizzle-orm'
import * as tables from './tables.ts'

export const relations = defineRelations(tables, (r) => ({
  clients: {
    serials: r.many.serials()
  },
  serials: {
    client: r.one.clients({ from: r.serials.clientId, to: r.clients.id, optional: false }),
    policy: r.one.policies({ from: r.serials.policyId, to: r.policies.id }),
    devices: r.many.devices()
  },
  policies: {
    serials: r.many.serials()
  },
  devices: {
    serial: r.one.serials({ from: r.devices.serialId, to: r.serials.id, optional: false })
  }
}))
