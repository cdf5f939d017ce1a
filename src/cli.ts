// Operator commands: `npm run cli -- <command>`.
//   migrate                                         apply database migrations
//   create-api-key --role ADMIN --name ops [--client cli_…] [--expires 2027-01-01T00:00:00Z]
//                                                   prints the new key once (stdout, one line)
//   rotate-encryption-key [--batch 500]             re-encrypts every encrypted column with ENCRYPTION_KEY
//   verify-audit-log                                checks the hash chain; exit code 1 when broken
import { parseArgs } from 'node:util'
import { createApiKeyService } from './api-keys/api-key-service.ts'
import { verifyAuditChain } from './audit/audit-log.ts'
import { ConfigError, loadConfig, type Config } from './config.ts'
import { createCache } from './platform/cache.ts'
import { createKeyring } from './platform/crypto.ts'
import { createDatabase } from './platform/database.ts'
import type { Deps } from './platform/deps.ts'
import { SerialModuleError } from './platform/errors.ts'
import { createEventBus } from './platform/event-bus.ts'
import { rotateEncryptionKey } from './platform/key-rotation.ts'
import { createMetrics } from './platform/metrics.ts'
import { createSigner } from './platform/signing.ts'

const USAGE = `usage: npm run cli -- <command>
  migrate
  create-api-key --role ADMIN|MANAGER|AUDITOR --name <name> [--client <clientId>] [--expires <ISO date>]
  rotate-encryption-key [--batch <rows>]
  verify-audit-log`

export interface CliIo { out (line: string): void, err (line: string): void }

/** Runs one command; returns the process exit code. Exported for tests. */
export async function runCli (argv: string[], env: Record<string, string | undefined> = process.env, io: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`)
}): Promise<number> {
  const [command, ...rest] = argv
  let config: Config
  try {
    config = await loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) { io.err(error.message); return 1 }
    throw error
  }
  const database = await createDatabase(config)
  try {
    switch (command) {
      case 'migrate': {
        await database.migrate()
        io.out('migrations applied')
        return 0
      }
      case 'create-api-key': {
        const { values } = parseArgs({ args: rest, options: { role: { type: 'string' }, name: { type: 'string' }, client: { type: 'string' }, expires: { type: 'string' } } })
        await database.migrate()
        // In-process cache and bus: the CLI only writes one row and its audit entry.
        const bus = createEventBus(undefined)
        const cache = await createCache({ redis: undefined, bus })
        const deps: Deps = {
          config,
          database,
          cache,
          bus,
          keyring: createKeyring(config.encryptionKey, config.encryptionKeysPrevious),
          signer: createSigner(config.signing.algorithm, config.signing.privateKeyPem, config.signing.publicKeyPem),
          metrics: createMetrics(),
          log: { info () {}, warn () {}, error () {}, debug () {}, trace () {}, fatal () {}, child () { return this }, level: 'silent', silent () {} } as unknown as Deps['log'],
          clock: () => new Date(),
          eventsWritten: () => {}
        }
        try {
          const service = createApiKeyService(deps)
          const { apiKey, secret } = await service.create(null, { ip: 'cli', requestId: 'cli' }, {
            name: values.name, role: values.role, clientId: values.client, expiresAt: values.expires
          })
          io.err(`created API key ${apiKey.id} (${apiKey.role}${apiKey.clientId ? `, client ${apiKey.clientId}` : ''}); it is shown once:`)
          io.out(secret)
          return 0
        } finally {
          await cache.close()
          await bus.close()
        }
      }
      case 'rotate-encryption-key': {
        const { values } = parseArgs({ args: rest, options: { batch: { type: 'string' } } })
        const batchSize = values.batch ? Number(values.batch) : 500
        if (!Number.isInteger(batchSize) || batchSize < 1) { io.err('--batch must be a positive integer'); return 1 }
        await database.migrate()
        const keyring = createKeyring(config.encryptionKey, config.encryptionKeysPrevious)
        const reports = await rotateEncryptionKey(database.db, keyring, { batchSize })
        for (const r of reports) io.out(`${r.table}.${r.column}: ${r.rotated} re-encrypted`)
        io.out(`all encrypted columns now use key ${keyring.currentKeyId}`)
        return 0
      }
      case 'verify-audit-log': {
        const result = await verifyAuditChain(database.db)
        io.out(JSON.stringify(result))
        return result.valid ? 0 : 1
      }
      default:
        io.err(USAGE)
        return command ? 1 : 0
    }
  } catch (error) {
    if (error instanceof SerialModuleError) {
      io.err(`${error.code}: ${error.message}${error.details ? ` ${JSON.stringify(error.details)}` : ''}`)
      return 1
    }
    io.err(`failed: ${(error as Error).message}`)
    return 1
  } finally {
    await database.close()
  }
}

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href
if (invokedDirectly) {
  runCli(process.argv.slice(2)).then((code) => { process.exitCode = code }, (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
