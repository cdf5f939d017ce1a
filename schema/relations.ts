import { defineRelations } from 'drizzle-orm'
import * as tables from './tables.ts'

export const relations = defineRelations(tables, (r) => ({
  clients: {
    serials: r.many.serials()
  },
  serials: {
    client: r.one.clients({ from: r.serials.clientId, to: r.clients.id, optional: false }),
    devices: r.many.devices()
  },
  devices: {
    serial: r.one.serials({ from: r.devices.serialId, to: r.serials.id, optional: false })
  }
}))
