// package.json says MIT: the repository and the packed SDK carry the licence text itself (issue #28).
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const client = join(root, 'packages/client')

function checkMit (t: Test, file: string) {
  const text = readFileSync(file, 'utf8')
  t.match(text, /^MIT License\n\nCopyright \(c\) 2026 The Serials authors\n/, `${file}: MIT, 2026, The Serials authors`)
  t.match(text, /Permission is hereby granted, free of charge/)
  t.match(text, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/)
}

t.test('LICENSE files match package.json', async (t) => {
  for (const dir of [root, client]) {
    t.equal(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).license, 'MIT')
    checkMit(t, join(dir, 'LICENSE'))
  }
  t.equal(readFileSync(join(client, 'LICENSE'), 'utf8'), readFileSync(join(root, 'LICENSE'), 'utf8'), 'the same text')
  t.ok(JSON.parse(readFileSync(join(client, 'package.json'), 'utf8')).files.includes('LICENSE'), 'named in files')
})

t.test('npm pack of @serials/client puts LICENSE in the tarball', async (t) => {
  // --dry-run: lists the tarball's files without writing one (or running the build).
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: client, env: { ...process.env, npm_config_loglevel: 'error' } })
  const [packed] = JSON.parse(stdout) as Array<{ name: string, files: Array<{ path: string }> }>
  t.equal(packed!.name, '@serials/client')
  const paths = packed!.files.map((f) => f.path)
  t.ok(paths.includes('LICENSE'), `LICENSE in ${paths.join(', ')}`)
  t.ok(paths.includes('README.md'))
})
