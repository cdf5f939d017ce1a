// usageEvent.seq is one type everywhere: a JSON number in REST and in GraphQL (the Seq scalar),
// exact up to 2^53 − 1; the audit log's seq and the usageRecorded resume argument use it too.
import t from 'tap'
import { GraphQLScalarType } from 'graphql'
import { schema } from '../../src/main/schema.ts'
import { build, createClient, createSerial, gqlOk } from '../helper.ts'

t.test('schema: seq fields and the resume argument are Seq', async (t) => {
  const seq = schema.getType('Seq')
  t.ok(seq instanceof GraphQLScalarType)
  t.match(seq?.description, /JSON number/)
  const field = (type: string, name: string) => String((schema.getType(type) as unknown as { getFields (): Record<string, { type: unknown }> }).getFields()[name]!.type)
  t.equal(field('UsageEvent', 'seq'), 'Seq!')
  t.equal(field('AuditEntry', 'seq'), 'Seq!')
  const usageRecorded = schema.getSubscriptionType()!.getFields().usageRecorded!
  t.equal(String(usageRecorded.args.find((a) => a.name === 'after')!.type), 'Seq')
})

t.test('Seq scalar: numbers out, numbers or digit strings in, nothing unsafe', async (t) => {
  const seq = schema.getType('Seq') as GraphQLScalarType
  t.equal(seq.serialize(42), 42)
  t.equal(seq.serialize(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
  t.throws(() => seq.serialize(Number.MAX_SAFE_INTEGER + 1), /2\^53/)
  t.throws(() => seq.serialize(-1))
  t.equal(seq.parseValue(7), 7)
  t.equal(seq.parseValue('7'), 7, 'a decimal string from an older client is accepted')
  for (const bad of [-1, 1.5, '1e3', 'abc', '', null, Number.MAX_SAFE_INTEGER + 1, '99999999999999999']) {
    t.throws(() => seq.parseValue(bad), `refuses ${JSON.stringify(bad)}`)
  }
})

t.test('REST and GraphQL answer the same number for seq', async (t) => {
  const app = await build(t)
  const client = await createClient(app)
  const serial = await createSerial(app, client.id)
  const rest = await app.inject({ method: 'POST', url: '/api/v1/serials/usage', payload: { serialNumber: serial.serialNumber, deviceId: 'seq-device' } })
  t.equal(rest.statusCode, 201)
  const restSeq = (rest.json() as { usageEvent: { seq: unknown } }).usageEvent.seq
  t.equal(typeof restSeq, 'number', 'REST: a number')

  const res = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: {
      query: 'mutation ($input: RecordUsageInput!) { recordUsage(input: $input) { usageEvent { id seq } } }',
      variables: { input: { serialNumber: serial.serialNumber, deviceId: 'seq-device' } }
    }
  })
  // Read the raw body: the JSON type on the wire is the point.
  const gqlSeq = (JSON.parse(res.body) as { data: { recordUsage: { usageEvent: { seq: unknown } } } }).data.recordUsage.usageEvent.seq
  t.equal(typeof gqlSeq, 'number', 'GraphQL: a number')
  t.ok((gqlSeq as number) > (restSeq as number), 'the later event has the larger seq')

  const audit = await gqlOk<{ auditLog: { edges: Array<{ node: { seq: unknown } }> } }>(app, '{ auditLog(first: 1) { edges { node { seq } } } }')
  t.equal(typeof audit.auditLog.edges[0]!.node.seq, 'number', 'audit seq: a number too')
})
