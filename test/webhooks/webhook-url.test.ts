// The SSRF classifier on a table of addresses: public ones pass, every non-public form is refused.
// No traffic leaves the machine: literals need no lookup, and names resolve through a stub.
import t from 'tap'
import { isPrivateAddress, refuseWebhookUrl, type Resolver } from '../../src/domain/webhooks/webhook-url.ts'

const PUBLIC = [
  '8.8.8.8', '93.184.216.34', '1.1.1.1', '100.63.255.255', '100.128.0.1', '172.15.255.255', '172.32.0.1',
  '192.167.255.255', '192.169.0.1', '198.17.255.255', '198.20.0.1', '223.255.255.254', '11.0.0.1',
  '2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001:81b::200e', '::ffff:8.8.8.8', '::ffff:5db8:d822',
  '64:ff9b::8.8.8.8', '2002:808:808::1'
]

const PRIVATE = [
  // IPv4 special-purpose ranges
  '0.0.0.0', '0.1.2.3', '10.0.0.1', '10.255.255.255', '100.64.0.1', '100.127.255.255', '127.0.0.1', '127.255.255.254',
  '169.254.169.254', '169.254.0.1', '172.16.0.1', '172.31.255.255', '192.0.0.8', '192.0.2.1', '192.88.99.1',
  '192.168.0.1', '192.168.255.255', '198.18.0.1', '198.19.255.255', '198.51.100.7', '203.0.113.9',
  '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255',
  // IPv6
  '::', '::1', '0:0:0:0:0:0:0:1', 'fe80::1', 'fe80::1%eth0', 'febf::1', 'fec0::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', 'ff05::2',
  '2001:db8::1', '2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '100::1',
  // IPv4 inside IPv6
  '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::ffff:0:0', '::127.0.0.1', '::a00:1',
  '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '2002:7f00:1::', '2002:a9fe:a9fe::1', '[::1]',
  // not an address at all
  '', 'localhost', '2130706433', '0177.0.0.1', '0x7f.0.0.1', '127.1', '1.2.3.4.5', 'not-an-ip'
]

t.test('public addresses are not private', async (t) => {
  for (const address of PUBLIC) t.equal(isPrivateAddress(address), false, address)
})

t.test('loopback, private, link-local, CGNAT, multicast, reserved, mapped and non-literal forms are private', async (t) => {
  for (const address of PRIVATE) t.equal(isPrivateAddress(address), true, address)
})

t.test('URLs: literal hosts in every spelling, localhost names, and resolved names', async (t) => {
  const looked: string[] = []
  const stub = (answers: Record<string, string[]>): Resolver => async (host) => {
    looked.push(host)
    const found = answers[host]
    if (!found) throw new Error('ENOTFOUND')
    return found
  }
  const resolve = stub({ 'hooks.example.com': ['93.184.216.34'], 'rebind.example.com': ['93.184.216.34', '10.0.0.5'], 'v6.example.com': ['2606:4700::6810:85e5'], 'meta.example.com': ['169.254.169.254'] })

  const allowed = ['https://8.8.8.8/hook', 'http://93.184.216.34:8080/x', 'https://[2606:4700:4700::1111]/', 'https://hooks.example.com/h', 'https://v6.example.com/h']
  for (const url of allowed) t.equal(await refuseWebhookUrl(url, false, resolve), null, `${url} is allowed`)

  const refused = [
    'http://127.0.0.1/', 'http://2130706433/', 'http://0177.0.0.1/', 'http://0x7f.0.0.1/', 'http://0x7f000001/', 'http://127.1/',
    'http://017700000001/', 'http://[::1]/', 'http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/', 'http://[fe80::1]/',
    'http://169.254.169.254/latest/meta-data/', 'http://100.64.1.1/', 'http://224.0.0.251/', 'http://0.0.0.0/', 'http://10.1.1.1/',
    'http://localhost/', 'http://LOCALHOST./', 'http://api.localhost/', 'https://rebind.example.com/', 'https://meta.example.com/',
    'https://nowhere.example.com/'
  ]
  for (const url of refused) t.not(await refuseWebhookUrl(url, false, resolve), null, `${url} is refused`)
  t.notOk(looked.some((h) => h.includes('localhost')), 'localhost names are refused without a lookup')

  t.equal(await refuseWebhookUrl('ftp://8.8.8.8/', false, resolve), 'must be http or https')
  t.equal(await refuseWebhookUrl('https://user:pw@8.8.8.8/', false, resolve), 'must not carry credentials')
  t.equal(await refuseWebhookUrl('http://127.0.0.1/', true, resolve), null, 'WEBHOOK_ALLOW_PRIVATE=true lets private targets through')
})
