// Builds the operator console and the customer portal into dist/web: hashed assets under
// /web/assets/ (served immutable), one HTML file per page (served at /dashboard and /portal).
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  root: here('.'),
  base: '/web/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: here('../dist/web'),
    emptyOutDir: true,
    assetsDir: 'assets',
    // No inline data: URLs: every asset is a file of its own under the page's CSP.
    assetsInlineLimit: 0,
    target: 'es2022',
    rollupOptions: {
      input: {
        dashboard: here('dashboard/index.html'),
        portal: here('portal/index.html')
      }
    }
  }
})
