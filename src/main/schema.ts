// Assembles the schema: importing a feature's *-graphql.ts registers its types on the builder.
import { builder } from '../graphql/builder.ts'
import { guardArgumentText } from '../graphql/argument-text.ts'
import '../graphql/node.ts'
import '../domain/clients/client-graphql.ts'
import '../domain/devices/device-graphql.ts'
import '../domain/policies/policy-graphql.ts'
import '../domain/serials/serial-graphql.ts'
import '../domain/validation/validation-graphql.ts'
import '../domain/usage/usage-graphql.ts'
import '../domain/usage/usage-subscriptions.ts'
import '../domain/certificates/certificate-graphql.ts'
import '../domain/api-keys/api-key-graphql.ts'
import '../domain/audit/audit-graphql.ts'
import '../domain/analytics/analytics-graphql.ts'
import '../domain/webhooks/webhook-graphql.ts'
import '../domain/portal/portal-graphql.ts'

// Every argument of every field is checked for text PostgreSQL cannot store before it resolves.
export const schema = guardArgumentText(builder.toSchema({ sortSchema: true }))
