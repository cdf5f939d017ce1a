// Customer portal: an end customer holding only a serial number sees its status and devices,
// frees a seat, and downloads a certificate for an offline machine. Public calls only; the number
// lives in this module's memory for the tab's lifetime and is never written to storage.
import { byId, describeError, el, formatDate, graphql } from '../shared/graphql.ts'

interface LicenseStatus {
  maskedNumber: string
  status: string
  expiresAt: string | null
  isDemo: boolean
  maxDevices: number
  entitlements: string[]
  devices: Array<{ deviceId: string, firstSeenAt: string, lastSeenAt: string }>
}

const STATUS = `query ($n: String!) { licenseStatus(serialNumber: $n) {
  maskedNumber status expiresAt isDemo maxDevices entitlements devices { deviceId firstSeenAt lastSeenAt } } }`
const RELEASE = 'mutation ($i: ReleaseDeviceInput!) { releaseDevice(input: $i) { deviceId active } }'
const CERTIFICATE = 'mutation ($i: IssueLicenseCertificateInput!) { issueLicenseCertificate(input: $i) { certificate algorithm keyId expiresAt } }'

let serialNumber: string | null = null

const lookupMessage = byId<HTMLParagraphElement>('lookup-message')
const devicesMessage = byId<HTMLParagraphElement>('devices-message')
const certificateMessage = byId<HTMLParagraphElement>('certificate-message')

function say (target: HTMLElement, text: string, kind: 'ok' | 'error' | '' = ''): void {
  target.textContent = text
  target.className = kind
}

function render (license: LicenseStatus): void {
  const summary = byId('summary')
  const facts: Array<[string, string]> = [
    ['Serial', license.maskedNumber],
    ['Status', license.status + (license.isDemo ? ' (demo)' : '')],
    ['Expires', formatDate(license.expiresAt)],
    ['Seats in use', `${license.devices.length} of ${license.maxDevices}`],
    ['Entitlements', license.entitlements.length > 0 ? license.entitlements.join(', ') : 'none']
  ]
  summary.replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', k === 'Status' ? { class: 'status', 'data-testid': 'license-status' } : {}, v)]))
  const rows = license.devices.map((d) => {
    const button = el('button', { type: 'button', class: 'secondary', 'data-device': d.deviceId }, 'Release')
    button.addEventListener('click', () => { void release(d.deviceId, button) })
    return el('tr', {}, el('td', { class: 'mono' }, d.deviceId), el('td', {}, formatDate(d.firstSeenAt)), el('td', {}, formatDate(d.lastSeenAt)), el('td', {}, button))
  })
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'No device holds a seat.')))
  byId('devices').replaceChildren(...rows)
  byId('license').hidden = false
}

async function load (): Promise<void> {
  if (!serialNumber) return
  const data = await graphql<{ licenseStatus: LicenseStatus }>(STATUS, { n: serialNumber })
  render(data.licenseStatus)
}

async function release (deviceId: string, button: HTMLButtonElement): Promise<void> {
  if (!serialNumber) return
  button.disabled = true
  try {
    await graphql(RELEASE, { i: { serialNumber, deviceId } })
    await load()
    say(devicesMessage, `Released ${deviceId}: its seat is free.`, 'ok')
  } catch (error) {
    button.disabled = false
    say(devicesMessage, describeError(error), 'error')
  }
}

byId<HTMLFormElement>('lookup').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = byId<HTMLInputElement>('serial-number')
  serialNumber = input.value.trim()
  say(lookupMessage, 'Looking up…')
  say(devicesMessage, '')
  say(certificateMessage, '')
  load().then(() => say(lookupMessage, ''), (error: unknown) => {
    byId('license').hidden = true
    serialNumber = null
    say(lookupMessage, describeError(error), 'error')
  })
})

byId<HTMLFormElement>('certificate').addEventListener('submit', (event) => {
  event.preventDefault()
  if (!serialNumber) return
  const deviceId = byId<HTMLInputElement>('offline-device').value.trim()
  const ttlDays = Number(byId<HTMLInputElement>('offline-days').value)
  say(certificateMessage, 'Signing…')
  graphql<{ issueLicenseCertificate: { certificate: string, algorithm: string, keyId: string, expiresAt: string } }>(CERTIFICATE, { i: { serialNumber, deviceId, ttlDays } })
    .then(async ({ issueLicenseCertificate: cert }) => {
      const file = new Blob([cert.certificate + '\n'], { type: 'text/plain' })
      const link = el('a', { href: URL.createObjectURL(file), download: `license-${deviceId.replace(/[^A-Za-z0-9._-]/g, '_')}.lic` })
      document.body.append(link)
      link.click()
      link.remove()
      window.setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
      say(certificateMessage, `Certificate for ${deviceId} downloaded (${cert.algorithm}, valid until ${formatDate(cert.expiresAt)}).`, 'ok')
      await load()
    })
    .catch((error: unknown) => say(certificateMessage, describeError(error), 'error'))
})
