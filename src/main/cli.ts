// Operator commands: `npm run -s cli -- <command>` (`-s` keeps npm's banner off stdout, so
// `KEY=$(npm run -s cli -- create-api-key …)` captures only the key). Arguments are parsed and
// checked before the configuration is loaded or the database opened.
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { verifyAuditChain } from '../domain/audit/audit-log.ts'
import { compose, keyringOf } from './compose.ts'
import { ConfigError, loadConfig, type Config } from '../config/config.ts'
import { createDatabase, DatabaseLockedError, type IDatabase } from '../infra/database.ts'
import type { Deps } from '../domain/deps.ts'
import { ContractError } from '../kernel/errors.ts'
import { rotateEncryptionKey } from '../domain/operations/key-rotation.ts'
import { BackupError, BackupSecretsError, backupDatabase, checkBackupSecrets, readBackupHeader, restoreDatabase } from '../domain/operations/backup.ts'
import { PassphraseError } from '../domain/operations/export-crypto.ts'
import { parseByteSize } from '../domain/operations/bounded-lines.ts'
import { ExportError, exportClient, importClient, verifyExport } from '../domain/operations/export-import.ts'
import { createProgressReporter, type ProgressReporter } from '../domain/operations/progress.ts'
import { checkSecretFingerprints, recordRotatedKeys, SecretMismatchError } from '../domain/operations/secret-fingerprints.ts'

export interface CliIo {
  out (line: string): void
  err (line: string): void
  /** Progress of long runs; default: plain lines through `err` (a bar when runCli owns a terminal). */
  progress?: ProgressReporter
}

function reporterOf (io: CliIo): ProgressReporter {
  return io.progress ?? { progress: (line, amount) => { if (!amount?.tick) io.err(line) }, end () {} }
}

type Env = Record<string, string | undefined>

/** Exit codes: 0 done, 1 the command failed, 2 the command line was wrong. */
export const EXIT_USAGE = 2

type Values = Record<string, string | boolean | undefined>
type Options = Record<string, { type: 'string' | 'boolean', short?: string }>

interface Command {
  summary: string
  usage: string
  options: Options
  /** What to do instead while the server holds the embedded database (PGlite is single-process). */
  whileServerRuns: string
  /** Checks the arguments before anything is opened; returns the problem, if any. */
  check? (values: Values, env: Env): string | undefined
  /** Checks with the configuration, before the database is opened (or created); returns the problem. */
  preflight? (ctx: { config: Config, values: Values, env: Env }): Promise<string | undefined>
  run (ctx: { config: Config, database: IDatabase, values: Values, io: CliIo, env: Env }): Promise<number>
  /** A command that needs neither configuration nor database: runs instead of `run`. */
  withoutDatabase? (ctx: { values: Values, io: CliIo, env: Env }): Promise<number>
}

const silentLog = { info () {}, warn () {}, error () {}, debug () {}, trace () {}, fatal () {}, child () { return this }, level: 'silent', silent () {} } as unknown as Deps['log']

const COMMANDS: Record<string, Command> = {
  migrate: {
    summary: 'apply database migrations',
    usage: 'migrate',
    options: {},
    whileServerRuns: 'the server applies migrations itself at start-up',
    async run ({ database, io }) {
      await database.migrate()
      io.out('migrations applied')
      return 0
    }
  },
  'create-api-key': {
    summary: 'create an API key and print it once on stdout',
    usage: 'create-api-key --role ADMIN|MANAGER|AUDITOR --name <name> [--client <clientId>] [--expires <ISO date>]',
    options: { role: { type: 'string' }, name: { type: 'string' }, client: { type: 'string' }, expires: { type: 'string' } },
    whileServerRuns: 'or use the API: the createApiKey mutation with an ADMIN key',
    check: (values) => !values.role ? '--role is required' : !values.name ? '--name is required' : undefined,
    async run ({ config, database, values, io }) {
      await database.migrate()
      // With another pepper the key's hash would never be found by the servers.
      await checkSecretFingerprints(database.db, config)
      // In-process cache and bus: the CLI only writes one row and its audit entry.
      const root = await compose(config, { log: silentLog, database, inProcess: true })
      try {
        const { apiKey, secret } = await root.services.apiKeys.create(null, { ip: 'cli', requestId: 'cli' }, {
          name: values.name, role: values.role, clientId: values.client, expiresAt: values.expires
        })
        io.err(`created API key ${apiKey.id} (${apiKey.role}${apiKey.clientId ? `, client ${apiKey.clientId}` : ''}); it is shown once:`)
        io.out(secret)
        return 0
      } finally {
        await root.close()
      }
    }
  },
  'rotate-encryption-key': {
    summary: 're-encrypt every encrypted column with ENCRYPTION_KEY',
    usage: 'rotate-encryption-key [--batch <rows>]',
    options: { batch: { type: 'string' } },
    whileServerRuns: 'on PostgreSQL it runs next to live servers',
    check: (values) => values.batch !== undefined && !/^[1-9][0-9]*$/.test(String(values.batch)) ? '--batch must be a positive integer' : undefined,
    async run ({ config, database, values, io }) {
      await database.migrate()
      const keyring = keyringOf(config)
      const reports = await rotateEncryptionKey(database.db, keyring, { batchSize: values.batch ? Number(values.batch) : 500 })
      for (const r of reports) io.out(`${r.table}.${r.column}: ${r.rotated} re-encrypted`)
      // Only now is the new key the database's key (instances without it are refused from here on).
      await recordRotatedKeys(database.db, config.encryptionKey, config.encryptionKeysPrevious)
      io.out(`all encrypted columns now use key ${keyring.currentKeyId}`)
      return 0
    }
  },
  backup: {
    summary: 'write a consistent snapshot of every table (gzip NDJSON with a manifest) to a file',
    usage: 'backup --out <file> [--force]',
    options: { out: { type: 'string' }, force: { type: 'boolean' } },
    whileServerRuns: 'on PostgreSQL it runs next to live servers',
    check: (values) => !values.out ? '--out is required' : undefined,
    async run ({ database, values, io }) {
      const started = performance.now()
      const bar = reporterOf(io)
      const manifest = await backupDatabase(database.db, String(values.out), bar.progress, { force: values.force === true }).finally(() => bar.end())
      const rows = Object.values(manifest.rowCounts).reduce((a, b) => a + b, 0)
      io.out(`backup written to ${String(values.out)}: ${rows} rows in ${Object.keys(manifest.rowCounts).length} tables, sha256 ${manifest.sha256}, ${Math.round(performance.now() - started)} ms`)
      return 0
    }
  },
  restore: {
    summary: 'restore a backup into an empty database (--force replaces a non-empty one)',
    usage: 'restore --in <file> [--force] [--max-bytes <size, default 64GiB uncompressed>]',
    options: { in: { type: 'string' }, force: { type: 'boolean' }, 'max-bytes': { type: 'string' } },
    whileServerRuns: 'stop the server: a restore replaces the whole database',
    check: (values) => !values.in ? '--in is required' : maxBytesProblem(values),
    // The header alone, before the database is opened or migrated: a restore into a fresh DATA_DIR
    // (which just generated secrets of its own) stops here, not after loading every row.
    async preflight ({ config, values, env }) {
      try {
        checkBackupSecrets(await readBackupHeader(String(values.in)), config)
        return undefined
      } catch (error) {
        if (!(error instanceof BackupSecretsError)) return error instanceof BackupError ? error.message : undefined
        const fromFiles = error.secrets.filter((name) => !env[name])
        const fromEnv = error.secrets.filter((name) => env[name])
        return [
          error.message.replace(/: restore with .*$/, ''),
          ...(fromFiles.length > 0 ? [`${fromFiles.length === error.secrets.length ? 'this instance\'s' : fromFiles.join(', ')} came from ${config.dataDir}/secrets/ (generated on first use): copy the old DATA_DIR's secrets into it (cp <old DATA_DIR>/secrets/* ${config.dataDir}/secrets/)`] : []),
          ...(fromEnv.length > 0 ? [`set ${fromEnv.join(', ')} to the old deployment's values`] : [])
        ].join('; ') + '; then run restore again (nothing was changed)'
      }
    },
    async run ({ config, database, values, io }) {
      const started = performance.now()
      await database.migrate()
      const bar = reporterOf(io)
      const manifest = await restoreDatabase(database.db, config, String(values.in), { force: values.force === true, progress: bar.progress, maxBytes: maxBytesOf(values) }).finally(() => bar.end())
      const rows = Object.values(manifest.rowCounts).reduce((a, b) => a + b, 0)
      io.out(`restored ${rows} rows in ${Object.keys(manifest.rowCounts).length} tables from ${String(values.in)}, ${Math.round(performance.now() - started)} ms; restart the servers (their caches hold the old data)`)
      return 0
    }
  },
  export: {
    summary: 'write one client\'s data to an NDJSON file for import into another deployment (serial numbers in clear text)',
    usage: 'export --client <clientId> --out <file.ndjson> (--key-env <VARIABLE> | --passphrase-env <VARIABLE>) [--force]',
    options: { client: { type: 'string' }, out: { type: 'string' }, 'passphrase-env': { type: 'string' }, 'key-env': { type: 'string' }, force: { type: 'boolean' } },
    whileServerRuns: 'on PostgreSQL it runs next to live servers',
    check: (values, env) => !values.client
      ? '--client is required'
      : !values.out
          ? '--out is required'
          : values['key-env'] === undefined && values['passphrase-env'] === undefined
            ? '--key-env or --passphrase-env is required: the file is signed with it (HMAC-SHA256), and the import refuses a file whose signature does not verify'
            : secretProblem(values, env),
    async run ({ config, database, values, io, env }) {
      const started = performance.now()
      const file = String(values.out)
      const bar = reporterOf(io)
      const manifest = await exportClient(database.db, config, String(values.client), file, { progress: bar.progress, passphrase: passphraseOf(values, env), signingKey: keyOf(values, env), force: values.force === true }).finally(() => bar.end())
      const rows = Object.values(manifest.rowCounts).reduce((a, b) => a + b, 0)
      io.out(`client ${String(values.client)} exported to ${file}: ${rows} rows (${manifest.rowCounts.serials ?? 0} serials), signed (HMAC-SHA256) with ${values['key-env'] !== undefined ? `the key in ${String(values['key-env'])}` : 'the passphrase'}, sha256 ${manifest.sha256}, ${Math.round(performance.now() - started)} ms`)
      io.err(`${file} holds serial numbers${values['passphrase-env'] ? ' (encrypted with the passphrase)' : ' in clear text'}: mode 0600, delete it once imported. Not exported: API keys (re-issue them on the target), webhook delivery history.`)
      return 0
    }
  },
  import: {
    summary: 'import one client exported from another deployment (refused if any of it exists here)',
    usage: 'import --in <file.ndjson> (--key-env <VARIABLE> | --passphrase-env <VARIABLE>) [--max-bytes <size, default 1GiB>]',
    options: { in: { type: 'string' }, 'passphrase-env': { type: 'string' }, 'key-env': { type: 'string' }, 'max-bytes': { type: 'string' } },
    whileServerRuns: 'on PostgreSQL it runs next to live servers',
    check: (values, env) => !values.in ? '--in is required' : secretProblem(values, env) ?? maxBytesProblem(values),
    async run ({ config, database, values, io, env }) {
      const started = performance.now()
      await database.migrate()
      const bar = reporterOf(io)
      const result = await importClient(database.db, config, String(values.in), { progress: bar.progress, passphrase: passphraseOf(values, env), signingKey: keyOf(values, env), maxBytes: maxBytesOf(values) }).finally(() => bar.end())
      const rows = Object.values(result.manifest.rowCounts).reduce((a, b) => a + b, 0)
      io.out(`imported client ${result.header.clientNumber} (${result.header.clientId}): ${rows} rows (${result.manifest.rowCounts.serials ?? 0} serials, ${result.auditEntries} audit entries appended to this chain) from ${String(values.in)}, ${Math.round(performance.now() - started)} ms`)
      if (result.policiesKept.length > 0) io.err(`policies already here, kept as they are here: ${result.policiesKept.join(', ')}`)
      io.err(`servers can keep running: nothing they cache refers to the imported client (NOT_FOUND is never cached). API keys were not exported: issue new ones (create-api-key --role MANAGER --client ${result.header.clientId} --name …).`)
      return 0
    }
  },
  'verify-export': {
    summary: 'check an export\'s signature and every row without a database (what import checks first); exit code 1 when refused',
    usage: 'verify-export --in <file.ndjson> (--key-env <VARIABLE> | --passphrase-env <VARIABLE>) [--max-bytes <size, default 1GiB>]',
    options: { in: { type: 'string' }, 'passphrase-env': { type: 'string' }, 'key-env': { type: 'string' }, 'max-bytes': { type: 'string' } },
    whileServerRuns: 'it opens no database',
    check: (values, env) => !values.in ? '--in is required' : secretProblem(values, env) ?? maxBytesProblem(values),
    async withoutDatabase ({ values, io, env }) {
      const { header, manifest } = await verifyExport(String(values.in), { passphrase: passphraseOf(values, env), signingKey: keyOf(values, env), maxBytes: maxBytesOf(values) })
      const rows = Object.values(manifest.rowCounts).reduce((a, b) => a + b, 0)
      io.out(`signature verified (HMAC-SHA256, ${header.signature.keyFrom === 'key' ? 'signing key' : 'passphrase'}): client ${header.clientNumber} (${header.clientId}) exported ${header.createdAt}, schema ${String(header.schemaVersion)}: ${rows} rows (${manifest.rowCounts.serials ?? 0} serials), every row within the service's rules, sha256 ${manifest.sha256}`)
      return 0
    },
    async run () { return 0 }
  },
  'verify-audit-log': {
    summary: 'check the audit log hash chain; exit code 1 when broken',
    usage: 'verify-audit-log',
    options: {},
    whileServerRuns: 'or use the API: the verifyAuditLog query',
    async run ({ database, io }) {
      const result = await verifyAuditChain(database.db)
      io.out(JSON.stringify(result))
      return result.valid ? 0 : 1
    }
  }
}

export function usage (): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length))
  return [
    'usage: npm run -s cli -- <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `npm run -s cli -- <command> --help` for a command\'s options. Configuration comes from the',
    'environment (and a .env file in the working directory), as for the server.'
  ].join('\n')
}

/** --passphrase-env and --key-env name variables (the secrets never go on the command line). */
function secretProblem (values: Values, env: Env): string | undefined {
  for (const option of ['passphrase-env', 'key-env']) {
    const name = values[option]
    if (name !== undefined && !env[String(name)]) return `--${option} names ${String(name)}, which is not set (or empty)`
  }
  return undefined
}

function passphraseOf (values: Values, env: Env): string | undefined {
  return values['passphrase-env'] === undefined ? undefined : env[String(values['passphrase-env'])]
}

function keyOf (values: Values, env: Env): string | undefined {
  return values['key-env'] === undefined ? undefined : env[String(values['key-env'])]
}

function maxBytesProblem (values: Values): string | undefined {
  if (values['max-bytes'] === undefined) return undefined
  return parseByteSize(String(values['max-bytes'])) === undefined ? '--max-bytes must be a size such as 1073741824, 512MiB or 2GiB' : undefined
}

function maxBytesOf (values: Values): number | undefined {
  return values['max-bytes'] === undefined ? undefined : parseByteSize(String(values['max-bytes']))
}

function commandUsage (command: Command): string {
  return `usage: npm run -s cli -- ${command.usage}\n${command.summary}`
}

/** Runs one command; returns the process exit code. Exported for tests. */
export async function runCli (argv: string[], env: Env = process.env, io: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  progress: createProgressReporter(process.stderr)
}): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) { io.err(usage()); return EXIT_USAGE }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined
    io.out(topic ? commandUsage(topic) : usage())
    return 0
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!command) {
    io.err(`unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')} (npm run -s cli -- --help)`)
    return EXIT_USAGE
  }

  let values: Values
  try {
    values = parseArgs({ args: rest, options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values
  } catch (error) {
    io.err(`${name}: ${(error as Error).message.split('\n')[0]}\n${commandUsage(command)}`)
    return EXIT_USAGE
  }
  if (values.help) { io.out(commandUsage(command)); return 0 }
  const problem = command.check?.(values, env)
  if (problem) { io.err(`${name}: ${problem}\n${commandUsage(command)}`); return EXIT_USAGE }
  if (command.withoutDatabase) {
    try {
      return await command.withoutDatabase({ values, io, env })
    } catch (error) {
      if (error instanceof ExportError || error instanceof PassphraseError) { io.err(`${name}: ${error.message}`); return 1 }
      io.err(`${name} failed: ${(error as Error).message.split('\n')[0]}`)
      return 1
    }
  }

  let config: Config
  try {
    config = await loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) { io.err(error.message); return 1 }
    throw error
  }
  const refused = await command.preflight?.({ config, values, env })
  if (refused) { io.err(`${name}: ${refused}`); return 1 }
  let database: IDatabase
  try {
    database = await createDatabase(config)
  } catch (error) {
    if (error instanceof DatabaseLockedError) {
      io.err(`${name}: ${error.message}, and PGlite allows one process at a time: stop the server first (${command.whileServerRuns})`)
      return 1
    }
    throw error
  }
  try {
    return await command.run({ config, database, values, io, env })
  } catch (error) {
    if (error instanceof SecretMismatchError || error instanceof ExportError || error instanceof PassphraseError) { io.err(`${name}: ${error.message}`); return 1 }
    if (error instanceof ContractError) {
      io.err(`${error.code}: ${error.message}${error.details ? ` ${JSON.stringify(error.details)}` : ''}`)
      return 1
    }
    // Drizzle's "Failed query" carries the database's own message as its cause.
    const cause = (error as Error).cause as Error | undefined
    io.err(`${name} failed: ${(error as Error).message.split('\n')[0]}${cause?.message ? ` (${cause.message})` : ''}`)
    return 1
  } finally {
    await database.close()
  }
}

const invokedDirectly = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href
if (invokedDirectly) {
  // A .env in the working directory, as for the server; variables already set win. Tests (which
  // run with NODE_ENV=test) never read it.
  if (process.env.NODE_ENV !== 'test' && existsSync('.env')) process.loadEnvFile('.env')
  runCli(process.argv.slice(2)).then((code) => { process.exitCode = code }, (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
