// The import graph of src/ and the layering it must keep. `npm run imports` prints it: the folder
// graph, cycles between folders and between files, and every import that breaks a rule below.
// test/architecture/layering.test.ts fails when there is one. `--root DIR` reads another checkout
// (e.g. an older commit in a git worktree) to compare before and after.
//
// Layers, highest first. A file may import its own folder and anything in a lower layer; never a
// higher one, nor one of its own layer's other folders (except the feature order below).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

export const LAYERS: ReadonlyArray<{ name: string, folders: readonly string[], note: string }> = [
  { name: 'main', folders: ['main'], note: 'composition root and entry points: server, cli, app, compose, schema' },
  { name: 'adapters', folders: ['http', 'http/graphql', 'jobs'], note: 'Fastify plugins and routes, the GraphQL engine, background jobs' },
  { name: 'domain', folders: ['domain'], note: 'features, each a folder under domain/, ordered below' },
  { name: 'graphql', folders: ['graphql'], note: 'the Pothos builder and what every schema file shares' },
  { name: 'events', folders: ['events'], note: 'domain events, the outbox and its relay' },
  { name: 'infra', folders: ['infra'], note: 'backends: database, cache, event bus, Redis, crypto, signing, metrics, tracing' },
  { name: 'config', folders: ['config'], note: 'the only reader of process.env' },
  { name: 'kernel', folders: ['kernel'], note: 'pure primitives: errors, ids, access rules, pagination, input helpers' }
]

/** Features, lowest first: a feature may import the features before it, never one after it. */
export const FEATURES = [
  'audit', 'clients', 'api-keys', 'webhooks', 'policies', 'serials', 'devices', 'validation',
  'usage', 'certificates', 'revocation-list', 'analytics', 'operations', 'portal'
] as const

/**
 * The one exception, by type only (erased at run time): the GraphQL context names the services
 * and the views its loaders return, which the composition root and the features define.
 */
const TYPE_ONLY_UPWARD = new Set(['graphql/context.ts'])

/** The GraphQL engine serves any schema: it knows no feature. */
const NO_FEATURE_IMPORTS = new Set(['http/graphql'])

export interface Edge { from: string, to: string, typeOnly: boolean }

/** Paths relative to src/, e.g. `domain/serials/serial-service.ts`. */
export function readImports (srcDir: string): { files: string[], edges: Edge[] } {
  const files: string[] = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = path.join(dir, name)
      if (statSync(full).isDirectory()) walk(full)
      else if (name.endsWith('.ts')) files.push(path.relative(srcDir, full).split(path.sep).join('/'))
    }
  }
  walk(srcDir)
  const edges: Edge[] = []
  for (const file of files) {
    const source = ts.createSourceFile(file, readFileSync(path.join(srcDir, file), 'utf8'), ts.ScriptTarget.Latest, false)
    const add = (specifier: string, typeOnly: boolean) => {
      if (!specifier.startsWith('.')) return
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier))
      if (target.startsWith('..')) return // outside src/: schema/, packages/
      edges.push({ from: file, to: target, typeOnly })
    }
    const visit = (node: ts.Node) => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        const clause = node.importClause
        const typeOnly = clause !== undefined && (clause.isTypeOnly || (clause.name === undefined && clause.namedBindings !== undefined &&
          ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.length > 0 && clause.namedBindings.elements.every((e) => e.isTypeOnly)))
        add(node.moduleSpecifier.text, typeOnly)
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        add(node.moduleSpecifier.text, node.isTypeOnly)
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const [arg] = node.arguments
        if (arg && ts.isStringLiteral(arg)) add(arg.text, false)
      }
      ts.forEachChild(node, visit)
    }
    visit(source)
  }
  return { files, edges }
}

/** The folder a file belongs to for the folder graph: `domain/serials`, `http/graphql`, `kernel`. */
export function folderOf (file: string): string {
  const parts = file.split('/')
  if (parts.length === 1) return '.'
  if ((parts[0] === 'domain' || parts[0] === 'http') && parts.length > 2) return `${parts[0]}/${parts[1]}`
  return parts[0] ?? '.'
}

function layerOf (folder: string): number {
  const top = folder === 'http/graphql' ? folder : folder.split('/')[0] ?? folder
  return LAYERS.findIndex((l) => l.folders.includes(top))
}

function featureRank (folder: string): number {
  return folder.startsWith('domain/') ? FEATURES.indexOf(folder.slice('domain/'.length) as typeof FEATURES[number]) : -1
}

/** Why this import breaks the layering, or null when it is allowed. */
export function violation (edge: Edge): string | null {
  const from = folderOf(edge.from)
  const to = folderOf(edge.to)
  if (from === to) return null
  if (edge.typeOnly && TYPE_ONLY_UPWARD.has(edge.from)) return null
  const lf = layerOf(from)
  const lt = layerOf(to)
  if (lf < 0) return `${from}/ is in no layer (scripts/import-graph.ts LAYERS)`
  if (lt < 0) return `${to}/ is in no layer (scripts/import-graph.ts LAYERS)`
  if (NO_FEATURE_IMPORTS.has(from) && to.startsWith('domain')) return `${from}/ is the GraphQL engine: it imports no feature`
  if (lt < lf) return `${LAYERS[lf]?.name} (${from}/) imports the higher layer ${LAYERS[lt]?.name} (${to}/)`
  if (lt > lf) return null
  if (LAYERS[lf]?.name === 'domain') {
    // domain/deps.ts (what every feature is built from) is the domain's floor.
    if (to === 'domain') return null
    if (from === 'domain') return `domain/${path.posix.basename(edge.from)} imports the feature ${to}/`
    const rf = featureRank(from)
    const rt = featureRank(to)
    if (rf < 0) return `${from}/ is not in the feature order (scripts/import-graph.ts FEATURES)`
    if (rt < 0) return `${to}/ is not in the feature order (scripts/import-graph.ts FEATURES)`
    return rt < rf ? null : `the feature ${from}/ imports ${to}/, which comes after it in the feature order`
  }
  // http/ may use its own GraphQL engine; otherwise folders of one layer stay apart.
  if (from === 'http' && to === 'http/graphql') return null
  return `${from}/ imports ${to}/, a folder of the same layer`
}

/** Strongly connected components of size > 1 (Tarjan), each sorted. */
export function cycles (nodes: Iterable<string>, next: (n: string) => Iterable<string>): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const strong = (v: string) => {
    idx.set(v, index); low.set(v, index); index++
    stack.push(v); on.add(v)
    for (const w of next(v)) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)) } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string | undefined
      do { w = stack.pop()!; on.delete(w); scc.push(w) } while (w !== v)
      if (scc.length > 1) out.push(scc.sort())
    }
  }
  for (const n of nodes) if (!idx.has(n)) strong(n)
  return out
}

export function analyse (srcDir: string) {
  const { files, edges } = readImports(srcDir)
  const fileNext = new Map<string, Set<string>>()
  const folderEdges = new Map<string, number>()
  // The declared type-only exception is left out of the folder graph (it is erased at run time);
  // file cycles count every import, types included.
  const exempt = edges.filter((e) => e.typeOnly && TYPE_ONLY_UPWARD.has(e.from) && violation({ ...e, typeOnly: false }) !== null)
  for (const e of edges) {
    if (!fileNext.has(e.from)) fileNext.set(e.from, new Set())
    fileNext.get(e.from)!.add(e.to)
    if (exempt.includes(e)) continue
    const a = folderOf(e.from)
    const b = folderOf(e.to)
    if (a !== b) folderEdges.set(`${a} -> ${b}`, (folderEdges.get(`${a} -> ${b}`) ?? 0) + 1)
  }
  const folderNext = new Map<string, Set<string>>()
  for (const key of folderEdges.keys()) {
    const [a, b] = key.split(' -> ') as [string, string]
    if (!folderNext.has(a)) folderNext.set(a, new Set())
    folderNext.get(a)!.add(b)
  }
  const folders = new Set(files.map(folderOf))
  const perFolder = new Map<string, number>()
  for (const f of files) perFolder.set(path.posix.dirname(f), (perFolder.get(path.posix.dirname(f)) ?? 0) + 1)
  return {
    files,
    edges,
    exempt,
    folderEdges,
    folderCycles: cycles(folders, (n) => folderNext.get(n) ?? []),
    fileCycles: cycles(files, (n) => fileNext.get(n) ?? []),
    violations: edges.flatMap((e) => { const why = violation(e); return why ? [{ ...e, why }] : [] }),
    filesPerFolder: perFolder
  }
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])
if (invokedDirectly) {
  const rootArg = process.argv.indexOf('--root')
  const root = rootArg > 0 ? path.resolve(process.argv[rootArg + 1] ?? '.') : path.resolve(fileURLToPath(new URL('..', import.meta.url)))
  const srcDir = path.join(root, 'src')
  if (!existsSync(srcDir)) throw new Error(`${srcDir} does not exist`)
  const a = analyse(srcDir)
  console.log(`${a.files.length} files, ${a.edges.length} imports, ${a.folderEdges.size} arrows between folders`)
  for (const [key, n] of [...a.folderEdges].sort()) console.log(`  ${key}  (${n})`)
  console.log(`type-only imports of the declared exception (${[...TYPE_ONLY_UPWARD].join(', ')}), left out of the folder graph: ${a.exempt.length}`)
  console.log(`cycles between folders: ${a.folderCycles.length}`)
  for (const c of a.folderCycles) console.log(`  ${c.join(' <-> ')}`)
  console.log(`cycles between files: ${a.fileCycles.length}`)
  for (const c of a.fileCycles) console.log(`  ${c.join(' <-> ')}`)
  console.log(`imports against the layering: ${a.violations.length}`)
  for (const v of a.violations) console.log(`  ${v.from} -> ${v.to}${v.typeOnly ? ' (type)' : ''}: ${v.why}`)
  const big = [...a.filesPerFolder].filter(([, n]) => n > 15)
  console.log(`folders over 15 files: ${big.length}${big.map(([d, n]) => ` ${d} (${n})`).join('')}`)
  process.exitCode = a.violations.length > 0 || a.fileCycles.length > 0 ? 1 : 0
}
