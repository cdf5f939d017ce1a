// Reading the README as a new user does: its sections, its shell blocks and what their `# →`
// comments promise. Shared by the tests that run the README's commands (test/docs/).
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { freePort } from '../helper.ts'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const readme = (): string => readFileSync(join(root, 'README.md'), 'utf8')
const TSX = join(root, 'node_modules/tsx/dist/loader.mjs')
/** What `npm start` runs, without its prestart (which would build the web pages into dist/). */
export const SERVER = `node --import ${TSX} ${join(root, 'src/main/server.ts')}`

/** The text under a heading (the heading line as written), up to the next heading of its level or above. */
export function section (text: string, heading: string): string {
  const lines = text.split('\n')
  const start = lines.indexOf(heading)
  if (start === -1) throw new Error(`README has no heading "${heading}"`)
  const level = /^#+/.exec(heading)![0].length
  // Lines inside fenced blocks are code (a shell comment is not a heading).
  let fenced = false
  const end = lines.findIndex((line, i) => {
    if (line.startsWith('```')) fenced = !fenced
    return i > start && !fenced && /^#+ /.test(line) && /^#+/.exec(line)![0].length <= level
  })
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n')
}

/** The fenced code blocks of one language, in order. */
export function codeBlocks (text: string, language: string): string[] {
  return [...text.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm'))].map((m) => m[1]!)
}

/**
 * The outputs a block promises for JSON answers: its `# → {…}` lines, as patterns. `…` stands for
 * anything, and so does `…(a note)`; everything else must be there as written.
 */
export function promisedJson (block: string): Array<{ text: string, pattern: RegExp }> {
  return block.split('\n').flatMap((line) => {
    const m = /^# → (\{.*\})\s*$/.exec(line)
    if (!m) return []
    const parts = m[1]!.split(/…(?:\([^)]*\))?/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    return [{ text: m[1]!, pattern: new RegExp(`^${parts.join('.*')}$`) }]
  })
}

/** Each promised pattern matches a line of the output, in order. Returns the ones that did not. */
export function unmatched (promised: Array<{ text: string, pattern: RegExp }>, output: string): string[] {
  const lines = output.split('\n')
  let at = 0
  const missing: string[] = []
  for (const { text, pattern } of promised) {
    const found = lines.findIndex((line, i) => i >= at && pattern.test(line))
    if (found === -1) missing.push(text)
    else at = found + 1
  }
  return missing
}

export interface Ran { blocks: string[], server: string, cwd: string }

/**
 * Runs README blocks in one bash (job control on, as in a terminal) in a temporary working
 * directory, with a marker line between blocks; `npm start &` becomes SERVER and localhost:3000 a
 * free port. Returns each block's output.
 */
export async function runBlocks (t: Test, blocks: Array<{ code: string, pauseBefore?: number }>, env: Record<string, string> = {}): Promise<Ran> {
  const cwd = mkdtempSync(join(tmpdir(), 'serials-readme-'))
  const tmp = join(cwd, 'tmp')
  const port = await freePort()
  t.teardown(() => {
    // The server the README started (its pid is in the lock file) if `kill %1` did not stop it.
    try { process.kill(JSON.parse(readFileSync(join(cwd, 'data/pglite.lock'), 'utf8')).pid, 'SIGKILL') } catch {}
    rmSync(cwd, { recursive: true, force: true })
  })
  // Jobs the blocks leave running (a heartbeat loop) end with the shell, even on a timeout.
  const script = ['set -m', 'trap \'kill $(jobs -p) 2>/dev/null\' EXIT', 'trap \'exit 143\' TERM', `mkdir -p ${tmp}`, ...blocks.flatMap(({ code, pauseBefore }, i) => [
    ...(pauseBefore ? [`sleep ${pauseBefore}`] : []),
    // After a command whose output ends without a newline, the marker still starts a line.
    `echo; echo "@@block ${i}"`,
    code.replaceAll('localhost:3000', `localhost:${port}`).replace(/\bnpm start &/g, `${SERVER} > server.log 2>&1 &`)
  ]), 'echo "@@end"', 'kill %1', 'wait %1']
  const child = spawn('bash', ['-c', script.join('\n')], {
    cwd,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME!, TMPDIR: tmp, API_PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const timer = setTimeout(() => child.kill('SIGTERM'), 150_000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(timer)
  const server = existsSync(join(cwd, 'server.log')) ? readFileSync(join(cwd, 'server.log'), 'utf8') : ''
  t.match(stdout, /@@end/, `ran to the end (exit ${code}); stderr: ${stderr}`)
  t.notMatch(stderr, /command not found|syntax error|No such file/, 'no shell errors')
  t.notMatch(server, /Serials failed to start/, 'the server started')
  t.ok(existsSync(join(cwd, 'data/pglite')), 'embedded defaults: ./data/pglite in the working directory')
  t.match(server, /"msg":"shutting down: draining requests"/, '`kill %1` stops the server')
  const parts = stdout.split(/^@@block \d+\n/m).slice(1)
  parts[parts.length - 1] = parts.at(-1)!.replace(/@@end[\s\S]*$/, '')
  return { blocks: parts, server, cwd }
}

export function promised (t: Test, block: string, output: string, name: string) {
  const expected = promisedJson(block)
  t.same(unmatched(expected, output), [], `${name}: every promised answer appears (output:\n${output})`)
  return expected.length
}
