// prestart: builds the console and portal (dist/web) when a fresh clone has not built them yet,
// so `npm install && npm start` serves working pages. An existing build is left as it is.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const built = ['dist/web/dashboard/index.html', 'dist/web/portal/index.html'].every((f) => existsSync(root + f))
if (!built) {
  process.stderr.write('dist/web is missing: building the console and portal (vite build)…\n')
  const result = spawnSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts'], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) process.exit(result.status ?? 1)
}
