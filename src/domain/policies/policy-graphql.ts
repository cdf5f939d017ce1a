import { builder, type InputFieldBuilder } from '../../graphql/builder.ts'
import { connectionType, forwardArgs, pageArgs, toConnection } from '../../graphql/connection.ts'
import { NodeRef } from '../../graphql/node.ts'
import type { PolicyView } from './policy-service.ts'

export const PolicyRef = builder.objectRef<PolicyView>('Policy').implement({
  description: 'A licensing template: serials created with its id inherit its rules',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Policy id (pol_…)' }),
    name: t.exposeString('name', { description: 'Vendor\'s name for the policy, e.g. Pro' }),
    maxDevices: t.exposeInt('maxDevices', { description: 'Device limit a new serial takes unless its input sets maxDevices' }),
    durationDays: t.exposeInt('durationDays', { nullable: true, description: 'Days from a serial\'s creation to its expiry; null = never expires' }),
    floating: t.exposeBoolean('floating', { description: 'True: a device\'s slot is a lease renewed by validations and heartbeats' }),
    heartbeatSeconds: t.exposeInt('heartbeatSeconds', { description: 'Expected seconds between heartbeats (5–86,400; floating only)' }),
    heartbeatGraceSeconds: t.exposeInt('heartbeatGraceSeconds', { description: 'Seconds a lease survives past a missed heartbeat (0–86,400)' }),
    maxActivationsPerDay: t.exposeInt('maxActivationsPerDay', { nullable: true, description: 'New-device activations per serial in a rolling 24 h; null = unlimited' }),
    offlineTtlDays: t.exposeInt('offlineTtlDays', { nullable: true, description: 'Cap on a license certificate\'s ttlDays; null = no cap' }),
    entitlements: t.exposeStringList('entitlements', { description: 'Upper-case feature codes the license unlocks' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the policy was created' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When the policy last changed' })
  })
})

const PolicyConnection = connectionType(PolicyRef, 'Policy', 'policies')

const policyFields = (t: InputFieldBuilder, create: boolean) => ({
  name: t.string({ required: create, description: 'Vendor\'s name for the policy (1–100 characters)' }),
  maxDevices: t.int({ required: create, description: 'Device limit of its serials (1–100,000)' }),
  durationDays: t.int({ description: 'Days from a serial\'s creation to its expiry; null = never expires' }),
  floating: t.boolean({ description: 'True: slots are leases renewed by validations and heartbeats (default false)' }),
  heartbeatSeconds: t.int({ description: 'Expected seconds between heartbeats, 5–86,400 (default 600)' }),
  heartbeatGraceSeconds: t.int({ description: 'Seconds a lease survives past a missed heartbeat, 0–86,400 (default 60)' }),
  maxActivationsPerDay: t.int({ description: 'New-device activations per serial in a rolling 24 h; null = unlimited' }),
  offlineTtlDays: t.int({ description: 'Cap on a license certificate\'s ttlDays (1–365); null = no cap' }),
  entitlements: t.stringList({ description: 'Feature codes: 1–64 of A-Z 0-9 _ . -, stored upper-case' })
})

const CreatePolicyInput = builder.inputType('CreatePolicyInput', { description: 'A new policy', fields: (t) => policyFields(t, true) })
const UpdatePolicyInput = builder.inputType('UpdatePolicyInput', {
  description: 'Changes to a policy; absent fields stay as they are, null clears a nullable one',
  fields: (t) => ({ id: t.id({ required: true, description: 'The policy to change' }), ...policyFields(t, false) })
})

builder.queryFields((t) => ({
  policy: t.field({
    type: PolicyRef,
    description: 'One policy by id',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true, description: 'Policy id (pol_…)' }) },
    resolve: (_root, { id }, ctx) => ctx.services.policies.get(ctx.actor, String(id))
  }),
  policies: t.field({
    type: PolicyConnection,
    description: 'Every policy, oldest first',
    authScopes: { authenticated: true },
    args: forwardArgs(t.arg),
    resolve: async (_root, args, ctx) => toConnection(await ctx.services.policies.list(ctx.actor, pageArgs(args)), (p) => p.id)
  })
}))

builder.mutationFields((t) => ({
  createPolicy: t.field({
    type: PolicyRef,
    description: 'ADMIN: creates a policy',
    authScopes: { admin: true },
    args: { input: t.arg({ type: CreatePolicyInput, required: true, description: 'The new policy' }) },
    resolve: (_root, { input }, ctx) => ctx.services.policies.create(ctx.actor, ctx.meta, input)
  }),
  updatePolicy: t.field({
    type: PolicyRef,
    description: 'ADMIN: changes a policy; reaches every serial of the policy on every instance at once',
    authScopes: { admin: true },
    args: { input: t.arg({ type: UpdatePolicyInput, required: true, description: 'The changes' }) },
    resolve: (_root, { input }, ctx) => ctx.services.policies.update(ctx.actor, ctx.meta, input)
  })
}))
