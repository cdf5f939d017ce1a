// Assembles the schema: importing a feature's *-graphql.ts registers its types on the builder.
import { builder } from './builder.ts'
import './node.ts'
import '../clients/client-graphql.ts'
import '../devices/device-graphql.ts'
import '../policies/policy-graphql.ts'
import '../serials/serial-graphql.ts'
import '../validation/validation-graphql.ts'
import '../usage/usage-graphql.ts'
import '../usage/usage-subscriptions.ts'
import '../certificates/certificate-graphql.ts'
import '../api-keys/api-key-graphql.ts'
import '../audit/audit-graphql.ts'
import '../analytics/analytics-graphql.ts'
import '../webhooks/webhook-graphql.ts'
import '../portal/portal-graphql.ts'

export const schema = builder.toSchema({ sortSchema: true })
