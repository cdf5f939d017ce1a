// The layering of src/ (scripts/import-graph.ts): imports point down, features only at features
// before them, no cycles, folders of a readable size, and the README's Layout names every folder.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { analyse, FEATURES, LAYERS, violation } from '../../scripts/import-graph.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const src = path.join(root, 'src')

t.test('src/ keeps its layering: no import against it, no cycle between files or folders', async (t) => {
  const a = analyse(src)
  t.ok(a.edges.length > 300, `read the imports (${a.edges.length})`)
  t.same(a.violations.map((v) => `${v.from} -> ${v.to}: ${v.why}`), [], 'imports against the layering (npm run -s imports)')
  t.same(a.fileCycles, [], 'cycles between files')
  t.same(a.folderCycles, [], 'cycles between folders')
  t.same([...a.filesPerFolder].filter(([, n]) => n > 15), [], 'no folder holds more than 15 files')
})

t.test('every feature folder is in the feature order, and every one there exists', async (t) => {
  const folders = readdirSync(path.join(src, 'domain')).filter((f) => statSync(path.join(src, 'domain', f)).isDirectory()).sort()
  t.same(folders, [...FEATURES].sort())
})

t.test('the rules refuse what they should', async (t) => {
  const edge = (from: string, to: string, typeOnly = false) => violation({ from, to, typeOnly })
  t.match(edge('kernel/errors.ts', 'infra/database.ts'), /higher layer/, 'kernel imports infra')
  t.match(edge('infra/cache.ts', 'domain/deps.ts', true), /higher layer/, 'a type-only import up is still up')
  t.match(edge('domain/serials/serial-service.ts', 'domain/validation/validation-service.ts'), /after it in the feature order/, 'a feature imports a later one')
  t.match(edge('domain/serials/serial-service.ts', 'http/rate-limit.ts'), /higher layer/, 'a feature imports an adapter')
  t.match(edge('http/graphql/ws-server.ts', 'domain/serials/serial-service.ts'), /imports no feature/, 'the GraphQL engine imports a feature')
  t.match(edge('jobs/sweep-leases.ts', 'http/auth-plugin.ts'), /same layer/, 'jobs import http')
  t.match(edge('domain/deps.ts', 'domain/serials/serial-state.ts'), /imports the feature/, 'the domain floor imports a feature')
  t.match(edge('graphql/context.ts', 'main/compose.ts'), /higher layer/, 'the context\'s exception is for types only')
  t.equal(edge('graphql/context.ts', 'main/compose.ts', true), null, 'the declared type-only exception')
  t.equal(edge('domain/validation/validation-service.ts', 'domain/serials/serial-state.ts'), null, 'a feature imports an earlier one')
  t.equal(edge('main/app.ts', 'http/rate-limit.ts'), null, 'down is fine')
})

t.test('a wrong import written into a real file fails the check', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'layering-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(src, path.join(dir, 'src'), { recursive: true })
  const file = path.join(dir, 'src/domain/serials/serial-rules.ts')
  writeFileSync(file, `import { checkSerial } from '../validation/validation-rules.ts'\nvoid checkSerial\n${readFileSync(file, 'utf8')}`)
  const a = analyse(path.join(dir, 'src'))
  t.same(a.violations.map((v) => `${v.from} -> ${v.to}`), ['domain/serials/serial-rules.ts -> domain/validation/validation-rules.ts'])
})

t.test('the README\'s Layout names every folder of src/ and no other', async (t) => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
  const block = /## Layout\n[\s\S]*?```\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  const listed = new Set([...block.matchAll(/^(src\/\S+?)\/?\s/gm)].map((m) => m[1]!.replace(/\/$/, '')))
  const actual = new Set<string>()
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name)
      if (statSync(full).isDirectory()) { actual.add(path.relative(root, full).split(path.sep).join('/')); walk(full) }
    }
  }
  walk(src)
  t.same([...listed].sort(), [...actual].sort())
  t.ok(LAYERS.every((l) => l.folders.every((f) => actual.has(`src/${f}`))), 'every layer folder exists')
})
