// The file an operator command writes (`export --out`, `backup --out`): never through a symbolic
// link, never over a file it did not create unless asked (`--force`), mode 0600, and only complete.
//
// Without force the path is created with O_CREAT | O_EXCL | O_NOFOLLOW: an existing file, link
// (dangling or not) or anything else there is refused by the kernel itself, with no window between
// a check and the open. With force an existing regular file is replaced: the new one is written
// beside it (same flags, a random name) and renamed over it at the end, so the old file stays whole
// until the new one is, and a link put there meanwhile is replaced, never followed. A symbolic link
// is refused even with force: replacing a link someone made is never what an operator meant.
import { randomBytes } from 'node:crypto'
import { constants, type WriteStream } from 'node:fs'
import { lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export interface OutputFile {
  /** A stream into the file (flushed to disk and closed when it ends); call once. */
  stream (): WriteStream
  /** Puts the file at its path (after its stream ended). */
  commit (): Promise<void>
  /** Removes what was written (it may hold serial numbers); the path is left as it was. */
  abort (): Promise<void>
}

const FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

/** Why `path` may not be written (one line), or null when it may. */
export async function refuseOutputPath (path: string, force: boolean): Promise<string | null> {
  let stats
  try {
    stats = await lstat(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
  if (stats.isSymbolicLink()) return `${path} is a symbolic link: refused (even with --force), write to a path of its own`
  if (!stats.isFile()) return `${path} exists and is not a regular file: refused`
  if (!force) return `${path} exists: pass --force to replace it`
  return null
}

export async function createOutputFile (path: string, options: { force?: boolean, error: (message: string) => Error }): Promise<OutputFile> {
  const force = options.force === true
  const refusal = await refuseOutputPath(path, force)
  if (refusal) throw options.error(refusal)
  const exists = force && await lstat(path).then(() => true, () => false)
  const written = exists ? join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`) : path
  let handle: FileHandle
  try {
    handle = await open(written, FLAGS, 0o600)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    // Created between the check and the open, or a link there (O_NOFOLLOW answers ELOOP).
    if (code === 'EEXIST' || code === 'ELOOP') throw options.error(`${path} appeared while it was being created: refused`)
    throw error
  }
  // Closing a handle the stream already closed is harmless.
  const close = async () => { await handle.close() }
  return {
    stream: () => handle.createWriteStream({ flush: true }),
    async commit () {
      await close()
      if (written !== path) await rename(written, path)
    },
    async abort () {
      await close().catch(() => {})
      await unlink(written).catch(() => {})
    }
  }
}
