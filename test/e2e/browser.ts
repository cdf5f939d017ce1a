// What the Chromium tests share: Debian's Chromium (never a downloaded browser; CI must have it),
// its launch flags on this closed network, the built console and portal, and the axe-core check.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'

export const root = fileURLToPath(new URL('../../', import.meta.url))
export const artifacts = join(root, 'test-artifacts')

/** Debian's Chromium, or undefined locally without it; in CI its absence fails the test file. */
export function findChromium (what: string): string | undefined {
  const path = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => spawnSync('test', ['-x', p]).status === 0)
  if (!path && process.env.CI === 'true') throw new Error(`${what} needs Chromium (apt-get install chromium)`)
  return path
}

/** Without the background-networking flags Chromium's own calls are refused by this closed network. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** The pages are built files: build them once if this checkout has not (about 2 s). */
export function ensureWebBuild (): void {
  const pages = ['dist/web/portal/index.html', 'dist/web/dashboard/index.html'].map((f) => join(root, f))
  if (pages.every((f) => existsSync(f))) return
  // Built aside, then renamed into place: test files running in parallel never see half a build.
  const aside = join(root, `dist/web-build-${process.pid}`)
  const result = spawnSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--outDir', aside], { cwd: root, encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`vite build failed: ${result.stderr}`)
  try {
    renameSync(aside, join(root, 'dist/web'))
  } catch {
    rmSync(aside, { recursive: true, force: true }) // another file's build got there first
  }
  if (!pages.every((f) => existsSync(f))) throw new Error('dist/web is incomplete after the build')
}

/** axe-core's serious and critical findings on the page as it stands, as `id: help` lines. */
export async function seriousAxeViolations (page: Page): Promise<string[]> {
  await page.evaluate(readFileSync(join(root, 'node_modules/axe-core/axe.min.js'), 'utf8'))
  return page.evaluate(async () => {
    const result = await (globalThis as any).axe.run((globalThis as any).document)
    return result.violations.filter((v: any) => v.impact === 'serious' || v.impact === 'critical').map((v: any) => `${v.id}: ${v.help}`)
  })
}
