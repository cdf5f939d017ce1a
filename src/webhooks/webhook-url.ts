// SSRF guard: a webhook URL must be http(s) and resolve only to public addresses, unless
// WEBHOOK_ALLOW_PRIVATE=true. Checked at creation and again before every delivery (DNS can change).
import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

const blocked = new BlockList()
for (const [net, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) {
  blocked.addSubnet(net, prefix, 'ipv4')
}
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['::ffff:0:0', 96], ['64:ff9b::', 96]] as const) {
  blocked.addSubnet(net, prefix, 'ipv6')
}

export function isPrivateAddress (address: string): boolean {
  const family = isIP(address)
  if (family === 0) return true
  return blocked.check(address, family === 6 ? 'ipv6' : 'ipv4')
}

/** Returns a reason the URL may not be used, or null when it may. */
export async function refuseWebhookUrl (raw: string, allowPrivate: boolean): Promise<string | null> {
  let url: URL
  try { url = new URL(raw) } catch { return 'is not a URL' }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be http or https'
  if (url.username || url.password) return 'must not carry credentials'
  if (allowPrivate) return null
  const host = url.hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
  } catch {
    return 'does not resolve'
  }
  if (addresses.length === 0 || addresses.some(isPrivateAddress)) return 'resolves to a loopback, link-local or private address'
  return null
}
