// SSRF guard: a webhook URL must be http(s) and resolve only to public addresses, unless
// WEBHOOK_ALLOW_PRIVATE=true. Checked at creation and again before every delivery (DNS can change),
// and a delivery connects to the very addresses it checked (pinnedLookup): resolving the name a
// second time to connect would let DNS answer a public address to the check and 127.0.0.1 to the
// connection (rebinding).
//
// The classifier works on the address's bytes: IPv4 ranges that are not globally routable, the
// IPv6 ones, and IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
// NAT64 64:ff9b::/96, 6to4 2002::/16) judged by the IPv4 address inside. Decimal, octal and hex
// host forms (http://2130706433/, http://0x7f.1/) never reach it as such: the WHATWG URL parser
// turns them into dotted quads first.
import { lookup } from 'node:dns/promises'
import { isIP, type LookupFunction } from 'node:net'

type Range = readonly [base: number[], prefixBits: number]

/** IPv4 ranges that are not public unicast (RFC 6890 special-purpose registry and multicast). */
const V4_BLOCKED: Range[] = [
  [[0, 0, 0, 0], 8], // "this network"
  [[10, 0, 0, 0], 8], // private
  [[100, 64, 0, 0], 10], // carrier-grade NAT
  [[127, 0, 0, 0], 8], // loopback
  [[169, 254, 0, 0], 16], // link-local (cloud metadata: 169.254.169.254)
  [[172, 16, 0, 0], 12], // private
  [[192, 0, 0, 0], 24], // IETF protocol assignments
  [[192, 0, 2, 0], 24], // documentation
  [[192, 88, 99, 0], 24], // 6to4 relay anycast
  [[192, 168, 0, 0], 16], // private
  [[198, 18, 0, 0], 15], // benchmarking
  [[198, 51, 100, 0], 24], // documentation
  [[203, 0, 113, 0], 24], // documentation
  [[224, 0, 0, 0], 4], // multicast
  [[240, 0, 0, 0], 4] // reserved, broadcast
]

/** IPv6 ranges that are not public unicast; the IPv4-carrying ones are handled apart. */
const V6_BLOCKED: Range[] = [
  [[0x01, 0x00, 0, 0, 0, 0, 0, 0], 64], // discard-only 100::/64
  [[0x20, 0x01, 0x00, 0x00], 23], // IETF protocol assignments 2001::/23 (Teredo 2001::/32 included)
  [[0x20, 0x01, 0x0d, 0xb8], 32], // documentation 2001:db8::/32
  [[0xfc], 7], // unique local
  [[0xfe, 0x80], 10], // link-local
  [[0xfe, 0xc0], 10], // site-local (deprecated)
  [[0xff], 8] // multicast
]

function inRange (bytes: number[], [base, bits]: Range): boolean {
  for (let i = 0; i < bits; i += 8) {
    const take = Math.min(8, bits - i)
    const mask = (0xff << (8 - take)) & 0xff
    if (((bytes[i / 8] ?? 0) & mask) !== ((base[i / 8] ?? 0) & mask)) return false
  }
  return true
}

function v4Bytes (address: string): number[] {
  return address.split('.').map(Number)
}

/** The 16 bytes of a valid IPv6 address (as isIP accepts it, zone id removed). */
function v6Bytes (address: string): number[] {
  let text = address
  const tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (text.slice(lastColon + 1).includes('.')) { // embedded dotted quad
    tail.push(...v4Bytes(text.slice(lastColon + 1)))
    text = text.slice(0, lastColon + 1) + '0:0'
    tail.length = 4
  }
  const [head, rest] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined]
  const groups = (s: string) => s === '' ? [] : s.split(':').map((g) => parseInt(g, 16))
  const left = groups(head)
  const right = rest === undefined ? [] : groups(rest)
  const all = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right]
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff])
  if (tail.length === 4) bytes.splice(12, 4, ...tail)
  return bytes
}

function v4Private (bytes: number[]): boolean {
  return V4_BLOCKED.some((range) => inRange(bytes, range))
}

/** Whether a literal address may not receive webhooks. Anything that is not an IP literal counts as private. */
export function isPrivateAddress (raw: string): boolean {
  const address = raw.replace(/^\[|\]$/g, '')
  if (address.includes('%')) return true // a zone id only makes sense on link-local addresses
  const family = isIP(address)
  if (family === 4) return v4Private(v4Bytes(address))
  if (family !== 6) return true
  const bytes = v6Bytes(address)
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0)
  if (zeros(0, 16)) return true // unspecified ::
  if (zeros(0, 15) && bytes[15] === 1) return true // loopback ::1
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return v4Private(bytes.slice(12)) // mapped ::ffff:a.b.c.d
  if (zeros(0, 12)) return true // IPv4-compatible ::a.b.c.d (deprecated; nothing routes it)
  if (inRange(bytes, [[0x00, 0x64, 0xff, 0x9b], 96])) return v4Private(bytes.slice(12)) // NAT64
  if (inRange(bytes, [[0x20, 0x02], 16])) return v4Private(bytes.slice(2, 6)) // 6to4
  return V6_BLOCKED.some((range) => inRange(bytes, range))
}

/** Host names that always mean this machine (RFC 6761), refused without a lookup. */
function isLocalName (host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '')
  return name === 'localhost' || name.endsWith('.localhost')
}

export type Resolver = (host: string) => Promise<string[]>

const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)

/** The longest URL stored, after normalisation (percent-encoding can lengthen what was sent). */
export const MAX_WEBHOOK_URL_LENGTH = 2000
// C0 controls, DEL and C1 controls. The URL parser would drop tabs and newlines without a word and
// percent-encode the rest: a URL carrying them was not meant as typed, so it is refused, not fixed.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/

export type UrlCheck<T> = { ok: true } & T | { ok: false, reason: string }

/**
 * The URL as it is stored and delivered to: WHATWG-parsed and serialised (`href`), so `<`, `>`, `"`
 * and spaces arrive percent-encoded and a host is always in its canonical form. No lookup.
 */
export function normaliseWebhookUrl (raw: string): UrlCheck<{ url: URL }> {
  if (CONTROL_CHARACTERS.test(raw)) return { ok: false, reason: 'must not contain control characters' }
  let url: URL
  try { url = new URL(raw) } catch { return { ok: false, reason: 'is not a URL' } }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { ok: false, reason: 'must be http or https' }
  if (url.username || url.password) return { ok: false, reason: 'must not carry credentials' }
  if (url.href.length > MAX_WEBHOOK_URL_LENGTH) return { ok: false, reason: `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters once normalised` }
  return { ok: true, url }
}

const PRIVATE = 'resolves to a loopback, link-local or private address'

/**
 * The normalised URL and every address its host resolves to, each checked (unless private
 * addresses are allowed): what a delivery may connect to, and nothing else. One lookup.
 */
export async function resolveWebhookTarget (raw: string, allowPrivate: boolean, resolve: Resolver = systemResolver): Promise<UrlCheck<{ url: URL, addresses: string[] }>> {
  const parsed = normaliseWebhookUrl(raw)
  if (!parsed.ok) return parsed
  const host = parsed.url.hostname.replace(/^\[|\]$/g, '')
  if (!allowPrivate && isLocalName(host)) return { ok: false, reason: PRIVATE }
  let addresses: string[]
  try {
    addresses = isIP(host) ? [host] : await resolve(host)
  } catch {
    return { ok: false, reason: 'does not resolve' }
  }
  if (addresses.length === 0 || addresses.some((a) => isIP(a) === 0)) return { ok: false, reason: allowPrivate ? 'does not resolve' : PRIVATE }
  if (!allowPrivate && addresses.some(isPrivateAddress)) return { ok: false, reason: PRIVATE }
  return { ok: true, url: parsed.url, addresses }
}

/**
 * A reason the URL may not be used, or null when it may (creation's check). With private addresses
 * allowed nothing is looked up, so a name that resolves only where the deliveries run is accepted.
 */
export async function refuseWebhookUrl (raw: string, allowPrivate: boolean, resolve: Resolver = systemResolver): Promise<string | null> {
  if (allowPrivate) {
    const parsed = normaliseWebhookUrl(raw)
    return parsed.ok ? null : parsed.reason
  }
  const checked = await resolveWebhookTarget(raw, allowPrivate, resolve)
  return checked.ok ? null : checked.reason
}

/**
 * A `lookup` for node:net that answers only the addresses already checked, whatever name it is
 * asked for: the connection goes where the check looked, while the request keeps the original name
 * for the Host header and TLS SNI (and the certificate check).
 */
export function pinnedLookup (addresses: readonly string[]): LookupFunction {
  const entries = addresses.map((address) => ({ address, family: isIP(address) }))
  return (_hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0
    const usable = entries.filter((e) => wanted === 0 || e.family === wanted)
    const first = usable[0]
    if (!first) {
      callback(Object.assign(new Error(`no checked address of family IPv${wanted}`), { code: 'ENOTFOUND' }), '', 0)
      return
    }
    if (options.all) callback(null, usable)
    else callback(null, first.address, first.family)
  }
}
