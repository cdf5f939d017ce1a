// Lines of an operator's file (export, backup) read with bounds, so that no file can make a
// command run forever or fill memory: `/dev/zero` (no newline ever), a 100 MB line, a file larger
// than the operator allowed, a gzip bomb (a few kilobytes that inflate to gigabytes). readline has
// no line limit and keeps a whole line in memory; this reads Buffers and gives up at the bound.

export interface LineBounds {
  /** Longest line, in bytes, newline excluded. */
  maxLineBytes: number
  /** Most bytes of text in all (after decompression or decryption). */
  maxBytes: number
  /**
   * For compressed input: the most text bytes per compressed byte read, checked once the text
   * passes `ratioAfterBytes` (small files compress far better than large ones).
   */
  maxRatio?: { ratio: number, compressedBytes: () => number, ratioAfterBytes: number }
  /** Builds the error to throw (the caller's own class); the message is one line. */
  error: (message: string) => Error
}

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

const UNITS: Record<string, number> = { '': 1, b: 1, k: KiB, kib: KiB, kb: KiB, m: MiB, mib: MiB, mb: MiB, g: GiB, gib: GiB, gb: GiB, t: 1024 * GiB, tib: 1024 * GiB, tb: 1024 * GiB }

/** `1073741824`, `512MiB`, `1 GiB`, `2g` (binary units throughout); undefined when not a size. */
export function parseByteSize (text: string): number | undefined {
  const match = /^\s*([0-9]{1,15})\s*([a-z]*)\s*$/i.exec(text)
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined
  if (!match || unit === undefined) return undefined
  const bytes = Number(match[1]) * unit
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined
}

export function formatBytes (bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`
  return `${bytes} bytes`
}

/**
 * The lines of `input` (UTF-8; a byte sequence that is not UTF-8 is an error, never replaced), the
 * newline removed; a last line without a newline is given too. Throws `bounds.error(…)` as soon as
 * a bound is passed: memory holds at most one line and one chunk.
 */
export async function * boundedLines (input: AsyncIterable<Buffer | string>, bounds: LineBounds): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  const decode = (parts: Buffer[]): string => {
    try {
      return decoder.decode(parts.length === 1 ? parts[0] : Buffer.concat(parts))
    } catch {
      throw bounds.error('a line is not UTF-8 text: the file is damaged')
    }
  }
  let pending: Buffer[] = []
  let pendingBytes = 0
  let total = 0
  const tooLong = () => bounds.error(`a line is longer than ${formatBytes(bounds.maxLineBytes)}: not a file this command wrote`)
  for await (const piece of input) {
    const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece
    total += chunk.length
    if (total > bounds.maxBytes) throw bounds.error(`the file holds more than ${formatBytes(bounds.maxBytes)} of text (the limit; see --max-bytes)`)
    const ratio = bounds.maxRatio
    if (ratio && total > ratio.ratioAfterBytes && total > ratio.ratio * Math.max(1, ratio.compressedBytes())) {
      throw bounds.error(`the file inflates more than ${ratio.ratio} times: a compression bomb, not a file this command wrote`)
    }
    let start = 0
    for (;;) {
      const newline = chunk.indexOf(10, start)
      if (newline < 0) break
      if (pendingBytes + newline - start > bounds.maxLineBytes) throw tooLong()
      pending.push(chunk.subarray(start, newline))
      const line = decode(pending)
      pending = []
      pendingBytes = 0
      start = newline + 1
      yield line
    }
    if (start < chunk.length) {
      pendingBytes += chunk.length - start
      if (pendingBytes > bounds.maxLineBytes) throw tooLong()
      pending.push(chunk.subarray(start))
    }
  }
  if (pendingBytes > 0) yield decode(pending)
}
