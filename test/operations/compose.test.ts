// deploy/compose.yaml cannot run here (no Docker engine): check it against the services and ports
// the README names, and check the files it mounts say the same (nginx upstreams, scrape targets,
// Grafana provisioning of the Serials dashboard).
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'

const root = fileURLToPath(new URL('../..', import.meta.url))
const deploy = join(root, 'deploy')
const compose = parse(readFileSync(join(deploy, 'compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<string, { image?: string, build?: unknown, ports?: string[], expose?: string[], environment?: Record<string, string>, volumes?: string[], depends_on?: unknown, command?: string[] }>
  secrets?: Record<string, { file: string }>
}

/** The README's service table: `| \`name\` | port … |`. */
function readmeServices (): Map<string, number> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('`deploy/compose.yaml`'))
  const rows = [...section.matchAll(/^\s*\| `([a-z0-9-]+)` \| (\d+)/gm)]
  return new Map(rows.map((m) => [m[1]!, Number(m[2])]))
}

const port = (spec: string) => Number(spec.split(':').at(-1))

t.test('the services and ports are those the README names', async (t) => {
  const named = readmeServices()
  t.same([...named.keys()].sort(), ['api-1', 'api-2', 'grafana', 'nginx', 'postgres', 'prometheus', 'redis'], 'README table')
  t.same(Object.keys(compose.services).sort(), [...named.keys()].sort(), 'compose services')
  for (const [name, expected] of named) {
    const service = compose.services[name]!
    const ports = [...(service.ports ?? []), ...(service.expose ?? [])].map(port)
    t.ok(ports.includes(expected), `${name} listens on ${expected} (${ports.join(', ')})`)
    t.ok(service.image || service.build, `${name} has an image`)
  }
  t.same(compose.services.nginx!.ports, ['80:80'], 'nginx is the only public entry point')
  for (const name of ['postgres', 'redis', 'api-1', 'api-2']) t.notOk(compose.services[name]!.ports, `${name} is not published`)
})

t.test('both API instances share PostgreSQL, Redis and every secret', async (t) => {
  const [a, b] = [compose.services['api-1']!.environment!, compose.services['api-2']!.environment!]
  t.same(a, b, 'identical environment')
  t.match(a.DATABASE_URL, /@postgres:5432\//)
  t.match(a.REDIS_URL, /@redis:6379$/)
  t.equal(a.API_PORT, '3000')
  t.equal(a.NODE_ENV, 'production')
  t.equal(a.TRUST_PROXY, 'true', 'client addresses come from nginx')
  for (const name of ['JWT_SECRET', 'ENCRYPTION_KEY', 'ENCRYPTION_PEPPER']) t.match(a[name], new RegExp(`^\\$\\{${name}:\\?`), `${name} must be set`)
  for (const secret of Object.values(compose.secrets ?? {})) t.ok(secret.file.startsWith('./secrets/'), 'signing keys as files')
})

t.test('mounted files exist and agree: nginx upstreams, scrape targets, Grafana dashboard', async (t) => {
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0]!
      if (!source.startsWith('.')) continue
      t.ok(existsSync(resolve(deploy, source)), `${name}: ${source} exists`)
    }
  }
  const nginx = readFileSync(join(deploy, 'compose/nginx.conf'), 'utf8')
  t.same([...nginx.matchAll(/^\s*server (\S+?)[ ;]/gm)].map((m) => m[1]), ['api-1:3000', 'api-2:3000'], 'nginx balances both instances')
  const prometheus = parse(readFileSync(join(deploy, 'compose/prometheus.yml'), 'utf8')) as { scrape_configs: Array<{ metrics_path: string, static_configs: Array<{ targets: string[] }> }> }
  t.same(prometheus.scrape_configs[0]!.static_configs[0]!.targets, ['api-1:3000', 'api-2:3000'], 'Prometheus scrapes both')
  t.equal(prometheus.scrape_configs[0]!.metrics_path, '/metrics')
  const grafana = compose.services.grafana!
  const dashboard = grafana.volumes!.find((v) => v.startsWith('./grafana/serials-dashboard.json:'))
  t.ok(dashboard, 'the Serials dashboard is mounted')
  const provider = parse(readFileSync(join(deploy, 'compose/grafana/provisioning/dashboards/serials.yaml'), 'utf8')) as { providers: Array<{ options: { path: string } }> }
  t.equal(dirname(dashboard!.split(':')[1]!), provider.providers[0]!.options.path, 'the provider loads the mounted dashboard')
  const datasource = parse(readFileSync(join(deploy, 'compose/grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: Array<{ url: string, type: string }> }
  t.match(datasource.datasources[0], { type: 'prometheus', url: 'http://prometheus:9090' })
  // File provisioning never substitutes a dashboard's __inputs: every `${VAR}` the panels use must
  // be one of the dashboard's own template variables, and the datasource one must select the
  // provisioned datasource's type.
  const board = JSON.parse(readFileSync(join(deploy, 'grafana/serials-dashboard.json'), 'utf8')) as { __inputs?: unknown, templating?: { list: Array<{ name: string, type: string, query: string }> } }
  t.notOk(board.__inputs, 'no import-only inputs')
  const variables = new Map((board.templating?.list ?? []).map((v) => [v.name, v]))
  const used = new Set([...JSON.stringify(board).matchAll(/\$\{(\w+)/g)].map((m) => m[1]!))
  t.ok(used.size > 0, 'the panels name their datasource through a variable')
  for (const name of used) t.ok(variables.has(name), `\${${name}} is a template variable of the dashboard`)
  for (const v of variables.values()) if (v.type === 'datasource') t.equal(v.query, datasource.datasources[0]!.type, `${v.name} selects the provisioned ${v.query} datasource`)
})
