// Progress of long CLI runs (backup, restore, export, import) on stderr: a one-line bar redrawn in
// place with `\r` on a terminal, plain lines otherwise (logs, pipes, CI), so a redirected stderr
// never fills with carriage returns.

/** How far a run is; `tick` marks frequent updates that only a terminal bar shows. */
export interface ProgressAmount { done: number, total: number, tick?: boolean }

/**
 * One status update. Plain lines: every call except ticks. Terminal: a call with an amount redraws
 * the bar (ticks at most every `minIntervalMs`), a call without one prints a line that stays.
 */
export type Progress = (line: string, amount?: ProgressAmount) => void

/** The part of a stream the reporter needs (process.stderr, or a fake in tests). */
export interface ProgressStream {
  isTTY?: boolean
  columns?: number
  write (chunk: string): unknown
}

export interface ProgressReporter {
  progress: Progress
  /** Ends the bar's line (a terminal keeps the last bar); call before printing anything else. */
  end (): void
}

const BAR_WIDTH = 24

export function progressBar (done: number, total: number, width = BAR_WIDTH): string {
  const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0
  const full = Math.round(ratio * width)
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(Math.floor(ratio * 100)).padStart(3)}%`
}

/**
 * `minIntervalMs`: ticks closer together than this are not redrawn (a terminal redraw per row would
 * cost more than the work); milestones and the last tick (done = total) always are.
 */
export function createProgressReporter (stream: ProgressStream, options: { minIntervalMs?: number, now?: () => number } = {}): ProgressReporter {
  const minInterval = options.minIntervalMs ?? 100
  const now = options.now ?? (() => performance.now())
  if (!stream.isTTY) {
    return {
      progress (line, amount) { if (!amount?.tick) stream.write(`${line}\n`) },
      end () {}
    }
  }
  let open = false
  let lastDraw = -Infinity
  const draw = (text: string) => {
    // A pseudo-terminal without a size reports 0 columns.
    const width = Math.max(20, (stream.columns || 80) - 1)
    // \x1b[K clears what a longer previous line left behind.
    stream.write(`\r${text.length > width ? text.slice(0, width) : text}\x1b[K`)
    open = true
    lastDraw = now()
  }
  return {
    progress (line, amount) {
      if (!amount) {
        // A message, not a step: it stays on screen, on its own line.
        if (open) stream.write('\n')
        stream.write(`${line}\n`)
        open = false
        return
      }
      if (amount.tick && amount.done < amount.total && now() - lastDraw < minInterval) return
      draw(`${progressBar(amount.done, amount.total)} ${line}`)
    },
    end () {
      if (open) stream.write('\n')
      open = false
    }
  }
}
