// A webhook URL is stored as the WHATWG parser serialises it (`href`): no raw `<`, `>`, `"` or
// spaces reach the database, the audit log, the API or a console. Control characters (which the
// parser would drop without a word), credentials and whatever the SSRF guard refuses are refused.
// Public IP literals only: nothing is looked up.
import { eq } from 'drizzle-orm'
import t from 'tap'
import { auditLog, webhooks } from '../../schema/index.ts'
import { normaliseWebhookUrl } from '../../src/domain/webhooks/webhook-url.ts'
import { build, createClient, gql, gqlOk } from '../helper.ts'

const CREATE = 'mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id url } } }'

const NORMALISED: Array<[string, string]> = [
  ['https://8.8.8.8/hook?x=<script>"y"', 'https://8.8.8.8/hook?x=%3Cscript%3E%22y%22'],
  ['https://8.8.8.8/a b<c>"d"', 'https://8.8.8.8/a%20b%3Cc%3E%22d%22'],
  ['HTTPS://0x08.0x08.0x08.0x08:443/p/../q', 'https://8.8.8.8/q'],
  ['  https://8.8.8.8/padded  ', 'https://8.8.8.8/padded'],
  ['https://[2606:4700:4700:0:0:0:0:1111]:8443/x#<frag>', 'https://[2606:4700:4700::1111]:8443/x#%3Cfrag%3E'],
  ['http://8.8.8.8', 'http://8.8.8.8/']
]

const REFUSED: Array<[string, RegExp]> = [
  ['https://8.8.8.8/a\nb', /control characters/],
  ['https://8.8.8.8/a\rb', /control characters/],
  ['https://8.8.8.8/a\tb', /control characters/],
  ['https://8.8.8.8/a\u0000b', /control characters|NUL/], // the input layer may refuse NUL first
  ['https://8.8.8.8/a\u007fb', /control characters/],
  ['https://8.8.8.8/a\u0085b', /control characters/],
  ['https://8.8.8.8/x\n<script>', /control characters/],
  ['https://user@8.8.8.8/', /credentials/],
  ['https://:secret@8.8.8.8/', /credentials/],
  ['https://exa<mple.com/', /not a URL/],
  ['javascript:alert(1)', /http or https/],
  [`https://8.8.8.8/${'<'.repeat(700)}`, /at most 2000/],
  ['http://127.0.0.1/', /private/]
]

t.test('normaliseWebhookUrl: the stored form, or why not', async (t) => {
  for (const [raw, href] of NORMALISED) {
    const result = normaliseWebhookUrl(raw)
    t.equal(result.ok && result.url.href, href, JSON.stringify(raw))
  }
  for (const [raw, reason] of REFUSED.slice(0, -1)) {
    const result = normaliseWebhookUrl(raw)
    t.match(result.ok ? null : result.reason, reason, JSON.stringify(raw))
  }
})

t.test('createWebhook stores, audits and answers the normalised URL; refuses the rest', async (t) => {
  const app = await build(t, { background: false })
  const client = await createClient(app)
  const db = app.deps.database.db
  for (const [raw, href] of NORMALISED) {
    const created = (await gqlOk(app, CREATE, { input: { clientId: client.id, url: raw } })).createWebhook
    t.equal(created.webhook.url, href, `answered normalised: ${JSON.stringify(raw)}`)
    const [row] = await db.select({ url: webhooks.url }).from(webhooks).where(eq(webhooks.id, created.webhook.id))
    t.equal(row?.url, href, 'stored normalised')
    const [audit] = await db.select({ changes: auditLog.changes }).from(auditLog).where(eq(auditLog.targetId, created.webhook.id))
    t.match(audit?.changes, { url: href }, 'audited normalised')
  }
  const listed = (await gqlOk(app, '{ webhooks { url clientId } }')).webhooks as Array<{ url: string, clientId: string }>
  // Only printable ASCII, no `<`, `>`, `"` and no space.
  for (const { url } of listed.filter((w) => w.clientId === client.id)) t.match(url, /^[!#-;=?-~]+$/, `listed without raw characters: ${url}`)

  for (const [raw, reason] of REFUSED) {
    const res = await gql(app, CREATE, { input: { clientId: client.id, url: raw } })
    t.match(res.errors?.[0]?.extensions, { code: 'VALIDATION_ERROR', errors: [{ field: 'url', message: reason }] }, JSON.stringify(raw))
  }
})
