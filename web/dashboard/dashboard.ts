// Operator console: sign in with an API key (exchanged at once for a short-lived token, which alone
// is kept, in this tab's session storage; the key itself is never stored), watch
// usage live over the usageRecorded subscription, and work on serials, clients and policies
// through the same public GraphQL API as any other client. Roles decide what can be changed:
// an AUDITOR sees every view with its change buttons disabled.
import { createClient, type Client } from 'graphql-ws'
import UPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'
import { ApiError, byId, describeError, el, formatDate, graphql } from '../shared/graphql.ts'
import { createFeatureChart, createValidationsChart, type FeatureChart, type ValidationsChart } from './charts.ts'

/** The session: `{token, expiresAt}` (expiresAt in local epoch ms). Never the API key. */
const SESSION_STORAGE = 'serials.console.session'
/** Where consoles before tokens kept the raw key: cleared on load. */
const LEGACY_KEY_STORAGE = 'serials.console.apiKey'
/** A message for the sign-in form after a reload (the session ended). */
const NOTICE_STORAGE = 'serials.console.notice'
/** The token's lifetime, in seconds (issueToken's default): then the console asks for the key again. */
const TOKEN_TTL_SECONDS = 3600
const SESSION_ENDED = 'Your session has ended (it expired, or its API key was revoked); sign in again.'
const LIVE_ROWS = 200
const CHART_MINUTES = 30

interface Me { role: 'ADMIN' | 'MANAGER' | 'AUDITOR' | null, clientId: string | null }
interface UsageEvent { id: string, serialId: string, clientId: string, deviceId: string, quantity: number, feature: string | null, recordedAt: string, seq: number }
interface SerialRow { id: string, maskedNumber: string, status: string, activeDevices: number, maxDevices: number, expiresAt: string | null }
interface PageInfo { hasNextPage: boolean, endCursor: string | null }
interface Connection<T> { edges: Array<{ node: T }>, pageInfo: PageInfo }

interface Session { token: string, expiresAt: number }

let token: string | null = null
let me: Me = { role: null, clientId: null }
let stopLive: (() => void) | null = null
const canChange = () => me.role === 'ADMIN' || me.role === 'MANAGER'

const call = <T>(query: string, variables: Record<string, unknown> = {}) => graphql<T>(query, variables, token ?? undefined)
  .catch((error: unknown) => {
    // The token expired or its key was revoked: every further call would fail the same way.
    if (token && error instanceof ApiError && error.code === 'AUTHENTICATION_ERROR') endSession(SESSION_ENDED)
    throw error
  })

function say (target: HTMLElement, text: string, kind: 'ok' | 'error' | '' = ''): void {
  target.textContent = text
  target.className = kind
}

/** A change button: disabled (with the reason in its description) for a read-only role. */
function actionButton (label: string, onClick: () => Promise<void>, options: { danger?: boolean, name?: string } = {}): HTMLButtonElement {
  const button = el('button', { type: 'button', class: options.danger ? 'danger' : 'secondary' }, label)
  if (options.name) button.setAttribute('aria-label', options.name)
  if (!canChange()) {
    button.disabled = true
    button.title = 'Your role is read-only'
  }
  button.addEventListener('click', () => {
    button.disabled = true
    onClick().finally(() => { button.disabled = !canChange() })
  })
  return button
}

// ---- sign-in ----------------------------------------------------------------------------------

/** When the token lapses, on this machine's clock: its lifetime (exp − iat) from now, so clock skew does not matter. */
function localExpiry (issued: { token: string, expiresAt: string }): number {
  try {
    const part = issued.token.split('.')[1] ?? ''
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown, iat?: unknown }
    if (typeof claims.exp === 'number' && typeof claims.iat === 'number') return Date.now() + (claims.exp - claims.iat) * 1000
  } catch { /* not a JWT we can read: the service's expiresAt */ }
  return Date.parse(issued.expiresAt)
}

/** The key is used once, here: exchanged for a token that expires, and dropped. */
async function signIn (key: string): Promise<void> {
  const data = await graphql<{ issueToken: { token: string, expiresAt: string } }>(
    'mutation ($i: IssueTokenInput!) { issueToken(input: $i) { token expiresAt } }', { i: { ttlSeconds: TOKEN_TTL_SECONDS } }, key)
  byId<HTMLInputElement>('api-key').value = ''
  await startSession({ token: data.issueToken.token, expiresAt: localExpiry(data.issueToken) })
}

let expiryTimer: number | undefined
let ending = false

/** Forgets the session and reloads (stopping every view); `notice` is shown above the sign-in form. */
function endSession (notice?: string): void {
  if (ending) return
  ending = true
  sessionStorage.removeItem(SESSION_STORAGE)
  if (notice) sessionStorage.setItem(NOTICE_STORAGE, notice)
  window.clearTimeout(expiryTimer)
  stopLive?.()
  stopLive = null
  validationsChart?.stop()
  token = null
  location.reload()
}

async function startSession (session: Session): Promise<void> {
  const data = await graphql<{ me: Me }>('{ me { role clientId } }', {}, session.token)
  if (!data.me.role) throw new ApiError('AUTHENTICATION_ERROR', 'The API key was not accepted')
  token = session.token
  me = data.me
  sessionStorage.setItem(SESSION_STORAGE, JSON.stringify(session))
  window.clearTimeout(expiryTimer)
  expiryTimer = window.setTimeout(() => endSession('Your session has expired; sign in again.'), Math.max(0, session.expiresAt - Date.now()))
  byId('who').textContent = `Signed in as ${me.role}${me.clientId ? ` of ${me.clientId}` : ''}${canChange() ? '' : ' (read-only)'}`
  byId('sign-out').hidden = false
  byId('signin').hidden = true
  byId('console').hidden = false
  startChart()
  // The feature chart's figures run to a seq: Live usage starts after it, so even a connection
  // dropped before the first event resumes with `after` (and the chart counts nothing twice).
  const throughSeq = await startAnalyticsCharts()
  if (lastSeq === undefined && throughSeq !== undefined) lastSeq = throughSeq
  startLive()
  // Each view reports its own failure (a MANAGER may not read everything): sign-in still succeeds.
  await Promise.all([
    loadSerials(true).catch(showSerialError),
    loadClients(true).then(() => loadHistory()).catch((error: unknown) => say(byId('history-message'), describeError(error), 'error')),
    loadPolicies(true).catch(() => undefined),
    loadKeys().catch((error: unknown) => say(byId('keys-message'), describeError(error), 'error')),
    loadWebhooks().catch((error: unknown) => say(byId('webhooks-message'), describeError(error), 'error')),
    loadAudit(true).catch((error: unknown) => say(byId('audit-message'), describeError(error), 'error'))
  ])
}

byId('sign-out').addEventListener('click', () => endSession())
byId<HTMLFormElement>('signin-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = byId<HTMLInputElement>('api-key')
  const message = byId('signin-message')
  say(message, 'Signing in…')
  signIn(input.value.trim()).then(() => { input.value = ''; say(message, '') }, (error: unknown) => say(message, describeError(error), 'error'))
})

// ---- live usage -------------------------------------------------------------------------------

const USAGE_SUBSCRIPTION = `subscription ($after: Seq) {
  usageRecorded(after: $after) { id serialId clientId deviceId quantity feature recordedAt seq } }`

const maskedNumbers = new Map<string, Promise<string>>()
function maskedNumberOf (serialId: string): Promise<string> {
  let masked = maskedNumbers.get(serialId)
  if (!masked) {
    masked = call<{ serial: { maskedNumber: string } }>('query ($id: ID!) { serial(id: $id) { maskedNumber } }', { id: serialId })
      .then((d) => d.serial.maskedNumber, () => serialId)
    maskedNumbers.set(serialId, masked)
  }
  return masked
}

/** The newest seq shown; a reconnect resumes after it, so a dropped connection loses nothing. */
let lastSeq: number | undefined
const liveListeners: Array<(event: UsageEvent) => void> = []

function showUsage (event: UsageEvent): void {
  if (lastSeq !== undefined && event.seq <= lastSeq) return // already shown (replay overlap)
  lastSeq = event.seq
  const serialCell = el('td', { class: 'mono' }, '…')
  void maskedNumberOf(event.serialId).then((masked) => { serialCell.textContent = masked })
  const row = el('tr', { 'data-seq': String(event.seq) },
    el('td', {}, new Date(event.recordedAt).toLocaleTimeString()),
    serialCell,
    el('td', { class: 'mono' }, event.deviceId),
    el('td', {}, event.feature ?? '—'),
    el('td', { class: 'num' }, String(event.quantity)))
  const body = byId('live-rows')
  body.prepend(row)
  while (body.children.length > LIVE_ROWS) body.lastElementChild?.remove()
  for (const listener of liveListeners) listener(event)
}

function startLive (): void {
  const status = byId('live-status')
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/graphql`
  let stopped = false
  let attempt = 0
  let client: Client | null = null
  let timer: number | undefined

  const setState = (state: 'connecting' | 'live' | 'retrying' | 'stopped', text: string, kind: 'ok' | 'error' | '' = '') => {
    status.dataset.state = state
    say(status, text, kind)
  }

  const retry = (reason: string) => {
    client?.dispose()
    client = null
    if (stopped) return
    attempt++
    const delay = Math.min(1000 * 2 ** Math.min(attempt - 1, 4), 15_000)
    setState('retrying', `Disconnected (${reason}); reconnecting in ${Math.round(delay / 1000)} s…`, 'error')
    timer = window.setTimeout(connect, delay)
  }

  function connect (): void {
    if (stopped) return
    setState('connecting', 'Connecting…')
    client = createClient({
      url,
      connectionParams: { authorization: `Bearer ${token ?? ''}` },
      lazy: true,
      // Reconnects are ours: each one resubscribes with `after` = the last seq shown.
      retryAttempts: 0,
      on: { connected: () => { attempt = 0; setState('live', 'Live: receiving usage events as they are recorded.', 'ok') } }
    })
    client.subscribe<{ usageRecorded: UsageEvent }>({ query: USAGE_SUBSCRIPTION, variables: lastSeq === undefined ? {} : { after: lastSeq } }, {
      next: (result) => {
        if (result.errors?.length) { setState('stopped', result.errors[0]?.message ?? 'Subscription error', 'error'); return }
        if (result.data) showUsage(result.data.usageRecorded)
      },
      error: (error: unknown) => {
        const code = (error as { code?: number }).code
        if (code === 4403 || code === 4401) {
          stopped = true
          setState('stopped', 'The credential was refused or revoked; sign in again.', 'error')
          // 4403: the token expired or its key was revoked.
          if (code === 4403) endSession(SESSION_ENDED)
          return
        }
        if (Array.isArray(error)) { stopped = true; setState('stopped', describeError(new ApiError('INTERNAL', String((error[0] as { message?: string })?.message))), 'error'); return }
        retry(code ? `code ${code}` : 'network')
      },
      complete: () => retry('closed by the server')
    })
  }

  connect()
  stopLive = () => {
    stopped = true
    window.clearTimeout(timer)
    client?.dispose()
  }
}

// ---- analytics charts ---------------------------------------------------------------------------

let validationsChart: ValidationsChart | null = null
let featureChart: FeatureChart | null = null

/** Both charts for the scope chosen (at first: every client the key sees); the feature figures' throughSeq. */
async function startAnalyticsCharts (): Promise<number | undefined> {
  if (me.role === 'MANAGER') byId('charts-client').replaceChildren(el('option', { value: '' }, 'My client'))
  validationsChart = createValidationsChart(call)
  validationsChart.start()
  featureChart = createFeatureChart(call)
  const chart = featureChart
  liveListeners.push((event) => chart.add(event))
  return chart.load(null).catch(() => undefined) // the chart says why; Live usage starts anyway
}

byId('charts-client').addEventListener('change', () => {
  const value = byId<HTMLSelectElement>('charts-client').value
  validationsChart?.setScope(value || null)
  void featureChart?.load(value || null).catch(() => undefined)
})
byId<HTMLFormElement>('charts-form').addEventListener('submit', (event) => event.preventDefault())

// ---- chart ------------------------------------------------------------------------------------

function startChart (): void {
  const container = byId('chart')
  const minute = (ms: number) => Math.floor(ms / 60_000) * 60
  const buckets = new Map<number, number>()
  const data = (): UPlot.AlignedData => {
    const now = minute(Date.now())
    const xs: number[] = []
    const ys: number[] = []
    for (let t = now - (CHART_MINUTES - 1) * 60; t <= now; t += 60) { xs.push(t); ys.push(buckets.get(t) ?? 0) }
    return [xs, ys]
  }
  const width = () => Math.max(320, Math.min(container.clientWidth || 800, 1100))
  const plot = new UPlot({
    width: width(),
    height: 220,
    legend: { show: false },
    cursor: { show: false },
    scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    series: [{}, { label: 'Quantity', stroke: '#0b5cad', width: 2, fill: 'rgba(11, 92, 173, 0.12)' }],
    axes: [{ stroke: '#1b1f24' }, { stroke: '#1b1f24' }]
  }, data(), container)
  liveListeners.push((event) => {
    const t = minute(new Date(event.recordedAt).getTime())
    buckets.set(t, (buckets.get(t) ?? 0) + event.quantity)
    plot.setData(data())
  })
  window.setInterval(() => plot.setData(data()), 60_000)
  window.addEventListener('resize', () => plot.setSize({ width: width(), height: 220 }))
}

/** usagePatterns needs a client: a MANAGER's own, else the one chosen (the first listed at first). */
async function loadHistory (): Promise<void> {
  const clientId = me.role === 'MANAGER' ? me.clientId : byId<HTMLSelectElement>('history-client').value
  if (!clientId) { say(byId('history-message'), 'No client yet.'); return }
  say(byId('history-message'), '')
  const hour = 3_600_000
  const until = Math.floor(Date.now() / hour) * hour + hour
  const since = until - 24 * hour
  const data = await call<{ usagePatterns: Array<{ bucket: string, validations: number, usageEvents: number }> }>(
    'query ($c: ID, $since: DateTime, $until: DateTime) { usagePatterns(clientId: $c, granularity: HOUR, since: $since, until: $until) { bucket validations usageEvents } }',
    { c: clientId, since: new Date(since).toISOString(), until: new Date(until).toISOString() })
  const byHour = new Map(data.usagePatterns.map((b) => [Math.floor(new Date(b.bucket).getTime() / hour) * hour, b]))
  const xs: number[] = []
  const validations: number[] = []
  const usage: number[] = []
  for (let t = since; t < until; t += hour) {
    xs.push(t / 1000)
    validations.push(byHour.get(t)?.validations ?? 0)
    usage.push(byHour.get(t)?.usageEvents ?? 0)
  }
  const container = byId('history-chart')
  container.replaceChildren()
  void new UPlot({
    width: Math.max(320, Math.min(container.clientWidth || 800, 1100)),
    height: 220,
    legend: { show: false },
    cursor: { show: false },
    scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    series: [{}, { label: 'Validations', stroke: '#1a6b2f', width: 2 }, { label: 'Usage events', stroke: '#0b5cad', width: 2, dash: [6, 4] }],
    axes: [{ stroke: '#1b1f24' }, { stroke: '#1b1f24' }]
  }, [xs, validations, usage], container)
}

// ---- serials ----------------------------------------------------------------------------------

const SERIAL_FIELDS = 'id maskedNumber status activeDevices maxDevices expiresAt'
let serialsCursor: string | null = null

async function loadSerials (reset: boolean): Promise<void> {
  if (reset) { serialsCursor = null; byId('serial-rows').replaceChildren() }
  const data = await call<{ serials: Connection<SerialRow> }>(`query ($after: String) { serials(first: 20, after: $after) { edges { node { ${SERIAL_FIELDS} } } pageInfo { hasNextPage endCursor } } }`, { after: serialsCursor })
  const rows = data.serials.edges.map(({ node: s }) => {
    const open = el('button', { type: 'button', class: 'secondary', 'aria-label': `Open ${s.maskedNumber}` }, 'Open')
    open.addEventListener('click', () => { void showSerial(s.id) })
    return el('tr', {}, el('td', { class: 'mono' }, s.maskedNumber), el('td', { class: 'status' }, s.status),
      el('td', { class: 'num' }, `${s.activeDevices} / ${s.maxDevices}`), el('td', {}, formatDate(s.expiresAt)), el('td', {}, open))
  })
  byId('serial-rows').append(...rows)
  serialsCursor = data.serials.pageInfo.endCursor
  byId('serials-more').hidden = !data.serials.pageInfo.hasNextPage
}
byId('serials-more').addEventListener('click', () => { void loadSerials(false).catch(showSerialError) })

const serialMessage = byId('serial-message')
const showSerialError = (error: unknown) => say(serialMessage, describeError(error), 'error')

interface SerialDetail extends SerialRow {
  isDemo: boolean
  revokeReason: string | null
  entitlements: string[]
  client: { clientNumber: string, name: string } | null
  devices: Connection<{ deviceId: string, lastSeenAt: string }>
}
const DETAIL = `${SERIAL_FIELDS} isDemo revokeReason entitlements client { clientNumber name } devices(first: 50, active: true) { edges { node { deviceId lastSeenAt } } pageInfo { hasNextPage endCursor } }`

async function showSerial (id: string): Promise<void> {
  const data = await call<{ serial: SerialDetail }>(`query ($id: ID!) { serial(id: $id) { ${DETAIL} } }`, { id })
  renderSerial(data.serial)
}

function renderSerial (s: SerialDetail): void {
  const panel = byId('serial-detail')
  const change = (mutation: 'suspendSerial' | 'reinstateSerial' | 'revokeSerial', input: Record<string, unknown>, done: string) => async () => {
    try {
      const name = mutation[0]!.toUpperCase() + mutation.slice(1)
      await call(`mutation ($i: ${name}Input!) { ${mutation}(input: $i) { id status } }`, { i: { id: s.id, ...input } })
      await showSerial(s.id)
      say(serialMessage, `${s.maskedNumber} ${done}.`, 'ok')
      void loadSerials(true)
    } catch (error) { showSerialError(error) }
  }
  const reason = el('input', { id: 'revoke-reason', value: 'Revoked from the console', maxlength: '500' })
  const final = s.status === 'REVOKED'
  const buttons = el('div', { class: 'actions' })
  if (!final) {
    if (s.status === 'SUSPENDED') buttons.append(actionButton('Reinstate', change('reinstateSerial', {}, 'reinstated')))
    else buttons.append(actionButton('Suspend', change('suspendSerial', {}, 'suspended')))
    buttons.append(actionButton('Revoke', async () => {
      if (!window.confirm(`Revoke ${s.maskedNumber}? This cannot be undone.`)) return
      await change('revokeSerial', { reason: reason.value || 'Revoked from the console' }, 'revoked')()
    }, { danger: true }))
  }
  const devices = s.devices.edges.map(({ node: d }) => el('tr', {},
    el('td', { class: 'mono' }, d.deviceId), el('td', {}, formatDate(d.lastSeenAt)),
    el('td', {}, actionButton('Release', async () => {
      try {
        await call('mutation ($i: DeactivateDeviceInput!) { deactivateDevice(input: $i) { deviceId } }', { i: { serialId: s.id, deviceId: d.deviceId } })
        await showSerial(s.id)
        say(serialMessage, `Released ${d.deviceId}.`, 'ok')
      } catch (error) { showSerialError(error) }
    }, { name: `Release ${d.deviceId}` }))))
  if (devices.length === 0) devices.push(el('tr', {}, el('td', { colspan: '3', class: 'muted' }, 'No active device.')))
  const facts: Array<[string, string]> = [
    ['Serial', s.maskedNumber], ['Status', s.status + (s.revokeReason ? ` (${s.revokeReason})` : '')],
    ['Client', s.client ? `${s.client.clientNumber} — ${s.client.name}` : '—'],
    ['Devices', `${s.activeDevices} of ${s.maxDevices}`], ['Expires', formatDate(s.expiresAt)],
    ['Demo', s.isDemo ? 'yes' : 'no'], ['Entitlements', s.entitlements.join(', ') || 'none']
  ]
  panel.replaceChildren(
    el('h3', {}, `Serial ${s.maskedNumber}`),
    el('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', k === 'Status' ? { class: 'status', 'data-testid': 'serial-status' } : {}, v)])),
    ...(final
      ? []
      : [el('div', { class: 'inline' }, el('label', { for: 'revoke-reason' }, 'Reason (for revocation)'), reason)]),
    buttons,
    el('h3', {}, 'Active devices'),
    el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Device'), el('th', { scope: 'col' }, 'Last seen'), el('th', { scope: 'col' }, 'Action'))), el('tbody', {}, ...devices)))
  panel.hidden = false
}

byId<HTMLFormElement>('serial-search').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = byId<HTMLInputElement>('search-number')
  say(serialMessage, 'Searching…')
  call<{ serialByNumber: SerialDetail }>(`query ($n: String!) { serialByNumber(serialNumber: $n) { ${DETAIL} } }`, { n: input.value.trim() })
    .then((data) => { renderSerial(data.serialByNumber); say(serialMessage, '') }, (error: unknown) => {
      byId('serial-detail').hidden = true
      showSerialError(error)
    })
})

// ---- clients and policies ---------------------------------------------------------------------

let clientsCursor: string | null = null
async function loadClients (reset: boolean): Promise<void> {
  if (reset) {
    clientsCursor = null
    byId('client-rows').replaceChildren()
    byId('history-client').replaceChildren()
    for (const option of [...byId<HTMLSelectElement>('charts-client').options]) if (option.value) option.remove()
  }
  const data = await call<{ clients: Connection<{ id: string, clientNumber: string, name: string, status: string, contactEmail: string }> }>(
    'query ($after: String) { clients(first: 20, after: $after) { edges { node { id clientNumber name status contactEmail } } pageInfo { hasNextPage endCursor } } }', { after: clientsCursor })
  byId('history-client').append(...data.clients.edges.map(({ node: c }) => el('option', { value: c.id }, `${c.clientNumber} — ${c.name}`)))
  if (me.role !== 'MANAGER') byId('charts-client').append(...data.clients.edges.map(({ node: c }) => el('option', { value: c.id }, `${c.clientNumber} — ${c.name}`)))
  byId('client-rows').append(...data.clients.edges.map(({ node: c }) => el('tr', {},
    el('td', { class: 'mono' }, c.clientNumber), el('td', {}, c.name), el('td', { class: 'status' }, c.status), el('td', {}, c.contactEmail))))
  clientsCursor = data.clients.pageInfo.endCursor
  byId('clients-more').hidden = !data.clients.pageInfo.hasNextPage
}
byId('history-client').addEventListener('change', () => { void loadHistory().catch((error: unknown) => say(byId('history-message'), describeError(error), 'error')) })
byId('clients-more').addEventListener('click', () => { void loadClients(false) })

let policiesCursor: string | null = null
async function loadPolicies (reset: boolean): Promise<void> {
  if (reset) { policiesCursor = null; byId('policy-rows').replaceChildren() }
  const data = await call<{ policies: Connection<{ name: string, maxDevices: number, durationDays: number | null, floating: boolean, entitlements: string[] }> }>(
    'query ($after: String) { policies(first: 20, after: $after) { edges { node { name maxDevices durationDays floating entitlements } } pageInfo { hasNextPage endCursor } } }', { after: policiesCursor })
  byId('policy-rows').append(...data.policies.edges.map(({ node: p }) => el('tr', {},
    el('td', {}, p.name), el('td', { class: 'num' }, String(p.maxDevices)), el('td', {}, p.durationDays ? `${p.durationDays} days` : 'unlimited'),
    el('td', {}, p.floating ? 'yes' : 'no'), el('td', {}, p.entitlements.join(', ') || 'none'))))
  policiesCursor = data.policies.pageInfo.endCursor
  byId('policies-more').hidden = !data.policies.pageInfo.hasNextPage
}
byId('policies-more').addEventListener('click', () => { void loadPolicies(false) })

// ---- API keys, webhooks, audit log ------------------------------------------------------------

interface ApiKeyRow { id: string, name: string, prefix: string, role: string, clientId: string | null, lastUsedAt: string | null, revokedAt: string | null, expiresAt: string | null }
async function loadKeys (): Promise<void> {
  const data = await call<{ apiKeys: ApiKeyRow[] }>('{ apiKeys { id name prefix role clientId lastUsedAt revokedAt expiresAt } }')
  byId('key-rows').replaceChildren(...data.apiKeys.map((k) => {
    const state = k.revokedAt ? `revoked ${formatDate(k.revokedAt)}` : k.expiresAt && new Date(k.expiresAt).getTime() < Date.now() ? 'expired' : 'active'
    const action = k.revokedAt || me.role !== 'ADMIN'
      ? el('span', { class: 'muted' }, '—')
      : actionButton('Revoke', async () => {
        if (!window.confirm(`Revoke the API key ${k.name}?`)) return
        try {
          await call('mutation ($i: RevokeApiKeyInput!) { revokeApiKey(input: $i) { id } }', { i: { id: k.id } })
          await loadKeys()
          say(byId('keys-message'), `Key ${k.name} revoked.`, 'ok')
        } catch (error) { say(byId('keys-message'), describeError(error), 'error') }
      }, { danger: true, name: `Revoke key ${k.name}` })
    return el('tr', {}, el('td', {}, k.name), el('td', { class: 'mono' }, k.prefix), el('td', {}, k.role), el('td', { class: 'mono' }, k.clientId ?? 'all'),
      el('td', {}, formatDate(k.lastUsedAt)), el('td', {}, state), el('td', {}, action))
  }))
  if (data.apiKeys.length === 0) byId('key-rows').append(el('tr', {}, el('td', { colspan: '7', class: 'muted' }, 'No API key.')))
}

interface WebhookRow { id: string, url: string, events: string[], enabled: boolean, consecutiveFailures: number }
interface DeliveryRow { eventType: string, status: string, attempts: number, lastStatusCode: number | null, lastError: string | null, updatedAt: string }
async function loadWebhooks (): Promise<void> {
  const data = await call<{ webhooks: WebhookRow[] }>('{ webhooks { id url events enabled consecutiveFailures } }')
  byId('webhook-rows').replaceChildren(...data.webhooks.map((w) => {
    const show = el('button', { type: 'button', class: 'secondary', 'aria-label': `Deliveries of ${w.url}` }, 'Deliveries')
    show.addEventListener('click', () => { void showDeliveries(w).catch((error: unknown) => say(byId('webhooks-message'), describeError(error), 'error')) })
    return el('tr', {}, el('td', { class: 'mono' }, w.url), el('td', {}, w.events.join(', ') || 'all'), el('td', {}, w.enabled ? 'enabled' : 'disabled'),
      el('td', { class: 'num' }, String(w.consecutiveFailures)), el('td', {}, show))
  }))
  if (data.webhooks.length === 0) byId('webhook-rows').append(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No webhook.')))
}

async function showDeliveries (w: WebhookRow): Promise<void> {
  const data = await call<{ webhookDeliveries: Connection<DeliveryRow> }>(
    'query ($id: ID!) { webhookDeliveries(webhookId: $id, first: 20) { edges { node { eventType status attempts lastStatusCode lastError updatedAt } } pageInfo { hasNextPage endCursor } } }', { id: w.id })
  const rows = data.webhookDeliveries.edges.map(({ node: d }) => el('tr', {}, el('td', {}, formatDate(d.updatedAt)), el('td', {}, d.eventType), el('td', {}, d.status),
    el('td', { class: 'num' }, String(d.attempts)), el('td', {}, d.lastStatusCode ? String(d.lastStatusCode) : d.lastError ?? '—')))
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No delivery yet.')))
  const box = byId('deliveries')
  box.replaceChildren(el('h3', {}, `Deliveries of ${w.url}`), el('table', {},
    el('thead', {}, el('tr', {}, ...['Updated', 'Event', 'Status', 'Attempts', 'Last answer'].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, ...rows)))
  box.hidden = false
}

interface AuditRow { createdAt: string, actorId: string, actorRole: string, action: string, targetType: string, targetId: string, ip: string | null }
let auditCursor: string | null = null
async function loadAudit (reset: boolean): Promise<void> {
  if (reset) { auditCursor = null; byId('audit-rows').replaceChildren() }
  const data = await call<{ auditLog: Connection<AuditRow> }>(
    'query ($after: String) { auditLog(first: 20, after: $after) { edges { node { createdAt actorId actorRole action targetType targetId ip } } pageInfo { hasNextPage endCursor } } }', { after: auditCursor })
  byId('audit-rows').append(...data.auditLog.edges.map(({ node: a }) => el('tr', {}, el('td', {}, formatDate(a.createdAt)),
    el('td', {}, `${a.actorId} (${a.actorRole})`), el('td', {}, a.action), el('td', { class: 'mono' }, `${a.targetType} ${a.targetId}`), el('td', {}, a.ip ?? '—'))))
  auditCursor = data.auditLog.pageInfo.endCursor
  byId('audit-more').hidden = !data.auditLog.pageInfo.hasNextPage
}
byId('audit-more').addEventListener('click', () => { void loadAudit(false).catch((error: unknown) => say(byId('audit-message'), describeError(error), 'error')) })
byId('audit-verify').addEventListener('click', () => {
  const message = byId('audit-message')
  say(message, 'Checking…')
  call<{ verifyAuditLog: { valid: boolean, checked: number, firstBrokenId: string | null } }>('{ verifyAuditLog { valid checked firstBrokenId } }')
    .then(({ verifyAuditLog: v }) => v.valid
      ? say(message, `Chain intact: ${v.checked} entries checked.`, 'ok')
      : say(message, `Chain BROKEN at entry ${v.firstBrokenId ?? '?'} (${v.checked} checked).`, 'error'),
    (error: unknown) => say(message, describeError(error), 'error'))
})

// ---- start ------------------------------------------------------------------------------------

sessionStorage.removeItem(LEGACY_KEY_STORAGE)
const notice = sessionStorage.getItem(NOTICE_STORAGE)
if (notice) {
  sessionStorage.removeItem(NOTICE_STORAGE)
  say(byId('signin-message'), notice, 'error')
}

function savedSession (): Session | null {
  try {
    const value = JSON.parse(sessionStorage.getItem(SESSION_STORAGE) ?? 'null') as Partial<Session> | null
    return value && typeof value.token === 'string' && typeof value.expiresAt === 'number' ? { token: value.token, expiresAt: value.expiresAt } : null
  } catch {
    return null
  }
}

const saved = savedSession()
if (saved && saved.expiresAt > Date.now()) {
  startSession(saved).catch((error: unknown) => {
    sessionStorage.removeItem(SESSION_STORAGE)
    const text = error instanceof ApiError && error.code === 'AUTHENTICATION_ERROR' ? SESSION_ENDED : describeError(error)
    say(byId('signin-message'), text, 'error')
  })
} else if (saved || sessionStorage.getItem(SESSION_STORAGE) !== null) {
  sessionStorage.removeItem(SESSION_STORAGE)
  say(byId('signin-message'), 'Your session has expired; sign in again.', 'error')
}
