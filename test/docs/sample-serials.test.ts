// Every serial number the documentation shows passes its own check character: a reader who pastes
// the README's sample into a validation call gets NOT_FOUND, not INVALID_FORMAT.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { normaliseSerialNumber } from '../../src/domain/serials/serial-number.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
/** Anything shaped like a serial number (five groups of five), valid or not. */
const SHAPE = /(?<![0-9A-Za-z-])[0-9A-Za-z]{5}(?:-[0-9A-Za-z]{5}){4}(?![0-9A-Za-z-])/g

function markdownFiles (dir: string): string[] {
  let entries: string[]
  try { entries = readdirSync(dir) } catch { return [] }
  return entries.flatMap((name) => {
    if (name === 'node_modules' || name.startsWith('.')) return []
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return markdownFiles(path)
    return name.endsWith('.md') ? [path] : []
  })
}

const files = [join(root, 'README.md'), join(root, 'CHANGELOG.md'), ...['docs', 'deploy', 'packages'].flatMap((d) => markdownFiles(join(root, d)))]
  .filter((f) => { try { return statSync(f).isFile() } catch { return false } })

t.test('every serial-number-shaped string in the docs passes the Luhn mod 32 check', async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8').match(SHAPE) ?? []
  t.ok(readme.length > 0, 'the README shows at least one sample serial number')
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
    for (const match of text.matchAll(SHAPE)) {
      const line = text.slice(0, match.index).split('\n').length
      t.ok(normaliseSerialNumber(match[0]), `${relative(root, file)}:${line} ${match[0]} has a valid check character`)
    }
  }
})
