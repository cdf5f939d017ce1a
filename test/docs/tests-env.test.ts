// The README promises that tests read only TEST_DATABASE_URL / TEST_REDIS_URL: a user who exported
// DATABASE_URL / REDIS_URL to run the service never gets test rows in that database.
import { execFile } from 'node:child_process'
import { createServer, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('DATABASE_URL / REDIS_URL / DB_HOST set, TEST_* unset: the helper stays embedded and never connects', async (t) => {
  // Stands in for the user's PostgreSQL and Redis: counts every connection attempt.
  const seen: Socket[] = []
  const trap = createServer((socket) => { seen.push(socket); socket.destroy() })
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve))
  t.teardown(() => trap.close())
  const port = (trap.address() as { port: number }).port

  const env: Record<string, string | undefined> = { ...process.env }
  for (const name of ['TEST_DATABASE_URL', 'TEST_REDIS_URL', 'CI']) delete env[name]
  Object.assign(env, {
    DATABASE_URL: `postgres://user@127.0.0.1:${port}/production`,
    REDIS_URL: `redis://127.0.0.1:${port}`,
    DB_HOST: '127.0.0.1',
    DB_PORT: String(port)
  })
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/docs/fixtures/helper-probe.ts'], { cwd: root, env, timeout: 120_000 })
  const report = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>
  t.same(report, { database: 'pglite', cache: 'memory', databaseUrl: null, redisUrl: null, fresh: null, leaked: [] },
    'embedded backends, no URL taken from the service variables, none left in the environment')
  t.equal(seen.length, 0, 'nothing connected to the address in DATABASE_URL / REDIS_URL')
})
