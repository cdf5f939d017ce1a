// The console's two analytics charts, each with a heading, a legend written out in words, a
// summary sentence and a table of the numbers (the text alternative of the canvas):
// - validations per minute by code: validationsPerMinute, re-read every 10 s (validations have no
//   subscription; the service flushes their counts every 2 s);
// - usage per feature: usageByFeature once, then every usageRecorded event past its throughSeq.
import UPlot from 'uplot'
import { el } from '../shared/graphql.ts'

type Call = <T>(query: string, variables?: Record<string, unknown>) => Promise<T>

/** Mirrors VALIDATION_CODES (src/domain/serials/serial-rules.ts): the order of series and table columns. */
const CODES = ['VALID', 'INVALID_FORMAT', 'NOT_FOUND', 'REVOKED', 'CLIENT_SUSPENDED', 'SUSPENDED', 'EXPIRED', 'TOO_MANY_DEVICES', 'TOO_MANY_ACTIVATIONS']
/** A colour and a dash pattern per code: lines differ by more than colour, and the legend names them. */
const CODE_STYLE: Record<string, { stroke: string, dash: number[] }> = {
  VALID: { stroke: '#1a6b2f', dash: [] },
  INVALID_FORMAT: { stroke: '#6b4e00', dash: [2, 3] },
  NOT_FOUND: { stroke: '#4a5360', dash: [8, 3, 2, 3] },
  REVOKED: { stroke: '#a4161a', dash: [8, 4] },
  CLIENT_SUSPENDED: { stroke: '#7a2e8e', dash: [3, 3] },
  SUSPENDED: { stroke: '#b04a00', dash: [12, 4] },
  EXPIRED: { stroke: '#0b5cad', dash: [6, 2, 2, 2] },
  TOO_MANY_DEVICES: { stroke: '#00695c', dash: [4, 4] },
  TOO_MANY_ACTIVATIONS: { stroke: '#5d4037', dash: [10, 2, 2, 2, 2, 2] }
}
const FALLBACK_STYLE = { stroke: '#1b1f24', dash: [1, 2] }
const styleOf = (code: string) => CODE_STYLE[code] ?? FALLBACK_STYLE

export const VALIDATION_MINUTES = 60
export const VALIDATION_REFRESH_MS = 10_000
export const FEATURE_HOURS = 24

const width = (container: HTMLElement) => Math.max(320, Math.min(container.clientWidth || 800, 1100))
const byId = (id: string) => {
  const node = document.getElementById(id)
  if (!node) throw new Error(`#${id} missing from the page`)
  return node
}

/** A short line in the series' colour and dash pattern, for the legend (decorative: the name follows). */
function swatch (stroke: string, dash: number[]): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.createElementNS(ns, 'svg')
  svg.setAttribute('width', '36')
  svg.setAttribute('height', '10')
  svg.setAttribute('aria-hidden', 'true')
  svg.setAttribute('focusable', 'false')
  const line = document.createElementNS(ns, 'line')
  for (const [name, value] of Object.entries({ x1: '0', y1: '5', x2: '36', y2: '5', stroke, 'stroke-width': '3', 'stroke-dasharray': dash.join(' ') || 'none' })) line.setAttribute(name, value)
  svg.append(line)
  return svg
}

// ---- validations per minute ------------------------------------------------------------------

interface MinuteCodeCount { minute: string, code: string, count: number }

export interface ValidationsChart {
  /** null: every client the key sees (a MANAGER: its own). */
  setScope (clientId: string | null): void
  /** Reads now, then every 10 s. */
  start (): void
  stop (): void
  refresh (): Promise<void>
}

export function createValidationsChart (call: Call): ValidationsChart {
  const container = byId('validations-chart')
  const legend = byId('validations-legend')
  const summary = byId('validations-summary')
  const updated = byId('validations-updated')
  const message = byId('validations-message')
  const table = byId('validations-table')
  let scope: string | null = null
  let plot: UPlot | null = null
  let plotCodes = ''
  let timer: number | undefined
  let running: Promise<void> | null = null
  let again = false

  function render (rows: MinuteCodeCount[]): void {
    const now = Math.floor(Date.now() / 60_000) * 60
    const xs: number[] = []
    for (let t = now - (VALIDATION_MINUTES - 1) * 60; t <= now; t += 60) xs.push(t)
    const present = new Set(rows.map((r) => r.code))
    const codes = [...CODES.filter((c) => present.has(c)), ...[...present].filter((c) => !CODES.includes(c)).sort()]
    const counts = new Map<string, number>() // `${minute seconds}|${code}`
    for (const r of rows) counts.set(`${Math.floor(new Date(r.minute).getTime() / 1000)}|${r.code}`, r.count)
    const series = codes.map((code) => xs.map((x) => counts.get(`${x}|${code}`) ?? 0))
    const data = [xs, ...series] as UPlot.AlignedData

    // A new set of codes needs new series: rebuild; otherwise only the data changes.
    if (!plot || plotCodes !== codes.join(',')) {
      plot?.destroy()
      container.replaceChildren()
      plotCodes = codes.join(',')
      plot = new UPlot({
        width: width(container),
        height: 220,
        legend: { show: false },
        cursor: { show: false },
        scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        series: [{}, ...codes.map((code) => ({ label: code, stroke: styleOf(code).stroke, dash: styleOf(code).dash, width: 2 }))],
        axes: [{ stroke: '#1b1f24' }, { stroke: '#1b1f24' }]
      }, data, container)
      legend.replaceChildren(...codes.map((code) => el('li', {}, swatch(styleOf(code).stroke, styleOf(code).dash), code)))
      if (codes.length === 0) legend.append(el('li', { class: 'muted' }, 'No code yet.'))
    } else {
      plot.setData(data)
    }

    // The text alternative: totals in a sentence, every minute with validations in a table.
    const totals = codes.map((code, i) => [code, series[i]!.reduce((a, b) => a + b, 0)] as const)
    const all = totals.reduce((a, [, n]) => a + n, 0)
    summary.textContent = all === 0
      ? `No validation in the last ${VALIDATION_MINUTES} minutes.`
      : `Last ${VALIDATION_MINUTES} minutes: ${all} validation${all === 1 ? '' : 's'} — ${totals.map(([code, n]) => `${code} ${n}`).join(', ')}.`
    const head = el('tr', {}, el('th', { scope: 'col' }, 'Minute'), ...codes.map((code) => el('th', { scope: 'col', class: 'num' }, code)))
    const body = xs.map((x, i) => ({ x, i })).filter(({ i }) => series.some((s) => s[i]! > 0)).reverse()
      .map(({ x, i }) => el('tr', {}, el('th', { scope: 'row' }, new Date(x * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
        ...series.map((s) => el('td', { class: 'num' }, String(s[i])))))
    table.replaceChildren(el('caption', {}, 'Validations per minute and code, newest first; minutes without validations left out.'),
      el('thead', {}, head), el('tbody', {}, ...(body.length ? body : [el('tr', {}, el('td', { colspan: String(codes.length + 1), class: 'muted' }, 'No validation.'))])))
  }

  async function refresh (): Promise<void> {
    if (running) {
      again = true // the scope may have changed meanwhile: read once more after this one
      return running
    }
    running = (async () => {
      try {
        const data = await call<{ validationsPerMinute: MinuteCodeCount[] }>(
          'query ($c: ID, $m: Int) { validationsPerMinute(clientId: $c, minutes: $m) { minute code count } }', { c: scope, m: VALIDATION_MINUTES })
        render(data.validationsPerMinute)
        updated.textContent = `Last read at ${new Date().toLocaleTimeString()}.`
        message.textContent = ''
        message.className = ''
      } catch (error) {
        message.textContent = `Could not read the validations: ${error instanceof Error ? error.message : String(error)}`
        message.className = 'error'
      } finally {
        running = null
      }
      if (again) {
        again = false
        await refresh()
      }
    })()
    return running
  }

  window.addEventListener('resize', () => plot?.setSize({ width: width(container), height: 220 }))
  return {
    setScope (clientId) { scope = clientId; void refresh() },
    start () {
      void refresh()
      window.clearInterval(timer)
      timer = window.setInterval(() => { void refresh() }, VALIDATION_REFRESH_MS)
    },
    stop () { window.clearInterval(timer) },
    refresh
  }
}

// ---- usage per feature -----------------------------------------------------------------------

interface FeatureUsage { feature: string | null, events: number, quantity: number }
export interface LiveUsage { clientId: string, feature: string | null, quantity: number, seq: number }

export interface FeatureChart {
  /** Reads usageByFeature for the scope (null: every client the key sees); resolves with its throughSeq. */
  load (clientId: string | null): Promise<number>
  /** A usageRecorded event: counted when it is in scope and past the figures read. */
  add (event: LiveUsage): void
}

const NO_FEATURE = '(no feature)'
/** Events kept while the figures load (a failed load leaves the chart waiting for the next one). */
const MAX_PENDING = 5000
const shortName = (name: string) => name.length > 14 ? `${name.slice(0, 13)}…` : name

export function createFeatureChart (call: Call): FeatureChart {
  const container = byId('features-chart')
  const summary = byId('features-summary')
  const table = byId('features-table')
  const message = byId('features-message')
  let scope: string | null = null
  /** The figures include every event up to this seq; null while (re)loading. */
  let throughSeq: number | null = null
  let pending: LiveUsage[] = []
  let features: FeatureUsage[] = []
  let plot: UPlot | null = null
  let frame: number | undefined

  const names = () => features.map((f) => f.feature ?? NO_FEATURE)

  function draw (): void {
    frame = undefined
    features.sort((a, b) => b.quantity - a.quantity || b.events - a.events || (a.feature ?? '\uffff').localeCompare(b.feature ?? '\uffff'))
    const xs = features.map((_f, i) => i)
    const data: UPlot.AlignedData = [xs, features.map((f) => f.quantity)]
    if (!plot) {
      plot = new UPlot({
        width: width(container),
        height: 240,
        legend: { show: false },
        cursor: { show: false },
        scales: {
          x: { time: false, range: (u) => [-0.5, Math.max(0.5, u.data[0].length - 0.5)] },
          y: { range: (_u, _min, max) => [0, Math.max(1, max)] }
        },
        series: [{}, { label: 'Quantity', fill: 'rgba(11, 92, 173, 0.55)', stroke: '#0b5cad', width: 1, paths: UPlot.paths.bars!({ size: [0.6, 80] }), points: { show: false } }],
        axes: [
          { stroke: '#1b1f24', splits: () => features.map((_f, i) => i), values: (_u, splits) => splits.map((i) => shortName(names()[i] ?? '')), grid: { show: false } },
          { stroke: '#1b1f24' }
        ]
      }, data, container)
    } else {
      plot.setData(data)
    }
    const events = features.reduce((a, f) => a + f.events, 0)
    const quantity = features.reduce((a, f) => a + f.quantity, 0)
    summary.textContent = events === 0
      ? 'No usage recorded in this window yet.'
      : `${events} usage event${events === 1 ? '' : 's'}, quantity ${quantity}, over ${features.length} feature${features.length === 1 ? '' : 's'}; the most used: ${features[0]!.feature ?? NO_FEATURE} (quantity ${features[0]!.quantity}).`
    table.replaceChildren(el('caption', {}, 'Usage per feature, largest quantity first.'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Feature'), el('th', { scope: 'col', class: 'num' }, 'Events'), el('th', { scope: 'col', class: 'num' }, 'Quantity'))),
      el('tbody', {}, ...(features.length
        ? features.map((f) => el('tr', {}, el('th', { scope: 'row' }, f.feature ?? NO_FEATURE), el('td', { class: 'num' }, String(f.events)), el('td', { class: 'num' }, String(f.quantity))))
        : [el('tr', {}, el('td', { colspan: '3', class: 'muted' }, 'No usage.'))])))
  }

  const schedule = () => { if (frame === undefined) frame = window.requestAnimationFrame(draw) }

  function count (event: LiveUsage): void {
    if (throughSeq === null || event.seq <= throughSeq) return // already in the figures
    if (scope !== null && event.clientId !== scope) return
    const existing = features.find((f) => f.feature === event.feature)
    if (existing) { existing.events++; existing.quantity += event.quantity } else features.push({ feature: event.feature, events: 1, quantity: event.quantity })
    schedule()
  }

  window.addEventListener('resize', () => plot?.setSize({ width: width(container), height: 240 }))
  return {
    async load (clientId) {
      scope = clientId
      throughSeq = null
      try {
        const data = await call<{ usageByFeature: { throughSeq: number, features: FeatureUsage[] } }>(
          'query ($c: ID, $h: Int) { usageByFeature(clientId: $c, hours: $h) { throughSeq features { feature events quantity } } }', { c: clientId, h: FEATURE_HOURS })
        if (scope !== clientId) return data.usageByFeature.throughSeq // another load took over
        features = data.usageByFeature.features.map((f) => ({ ...f }))
        throughSeq = Number(data.usageByFeature.throughSeq)
        message.textContent = ''
        message.className = ''
        // Events heard while the figures were on their way: those past throughSeq count.
        const heard = pending
        pending = []
        for (const event of heard) count(event)
        schedule()
        return throughSeq
      } catch (error) {
        message.textContent = `Could not read the usage per feature: ${error instanceof Error ? error.message : String(error)}`
        message.className = 'error'
        throw error
      }
    },
    add (event) {
      if (throughSeq === null) {
        pending.push(event)
        if (pending.length > MAX_PENDING) pending.shift()
        return
      }
      count(event)
    }
  }
}
