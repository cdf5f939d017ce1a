// The CLI's progress reporter: a bar redrawn with \r on a terminal, plain lines elsewhere.
import { Writable } from 'node:stream'
import t from 'tap'
import { createProgressReporter, progressBar } from '../../src/domain/operations/progress.ts'

function fakeStream (isTTY: boolean, columns = 80) {
  const chunks: string[] = []
  const stream = new Writable({ write (chunk, _encoding, callback) { chunks.push(String(chunk)); callback() } }) as Writable & { isTTY?: boolean, columns?: number }
  stream.isTTY = isTTY
  stream.columns = columns
  return { stream, text: () => chunks.join(''), chunks }
}

async function settle () { await new Promise((resolve) => setImmediate(resolve)) }

t.test('the bar', async (t) => {
  t.equal(progressBar(0, 10, 10), '[----------]   0%')
  t.equal(progressBar(5, 10, 10), '[#####-----]  50%')
  t.equal(progressBar(10, 10, 10), '[##########] 100%')
  t.equal(progressBar(15, 10, 10), '[##########] 100%', 'clamped')
  t.equal(progressBar(3, 0, 10), '[----------]   0%', 'no total: empty')
})

t.test('on a terminal: one line redrawn with \\r, ticks throttled, messages on their own lines', async (t) => {
  const fake = fakeStream(true)
  let clock = 0
  const reporter = createProgressReporter(fake.stream, { minIntervalMs: 100, now: () => clock })
  reporter.progress('export: holds serial numbers in clear text')
  reporter.progress('export: serials 1000 rows', { done: 1000, total: 4000, tick: true })
  clock = 50
  reporter.progress('export: serials 2000 rows', { done: 2000, total: 4000, tick: true })
  clock = 200
  reporter.progress('export: serials 3000 rows', { done: 3000, total: 4000, tick: true })
  clock = 210
  reporter.progress('export: serials 4000 rows', { done: 4000, total: 4000 })
  reporter.end()
  await settle()
  const text = fake.text()
  t.equal(text, [
    'export: holds serial numbers in clear text\n',
    `\r${progressBar(1000, 4000)} export: serials 1000 rows\x1b[K`,
    `\r${progressBar(3000, 4000)} export: serials 3000 rows\x1b[K`,
    `\r${progressBar(4000, 4000)} export: serials 4000 rows\x1b[K`,
    '\n'
  ].join(''), 'the 2000-row tick came 50 ms after the last redraw and was skipped; the last always shows')
  t.notOk(text.includes('2000 rows'))
  t.equal(text.split('\n').length, 3, 'two newlines: after the message and at the end')
})

t.test('on a terminal: a message closes the bar line first; long lines are cut to the width', async (t) => {
  const fake = fakeStream(true, 40)
  const reporter = createProgressReporter(fake.stream, { minIntervalMs: 0 })
  reporter.progress('restore: serials 500 rows of a very long table name indeed', { done: 1, total: 2 })
  reporter.progress('restore: emptying 3 tables (--force)')
  reporter.end()
  reporter.end()
  await settle()
  const [bar, message, rest] = fake.text().split('\n')
  t.equal(bar!.replace('\x1b[K', '').length, 40, 'cut to columns - 1 after the \\r')
  t.ok(bar!.startsWith('\r[############------------]  50% restore'))
  t.equal(message, 'restore: emptying 3 tables (--force)')
  t.equal(rest, '', 'end() after a message adds nothing')
})

t.test('not a terminal: plain lines, ticks dropped, no \\r', async (t) => {
  const fake = fakeStream(false)
  const reporter = createProgressReporter(fake.stream)
  reporter.progress('backup: clients 3 rows', { done: 3, total: 10 })
  reporter.progress('backup: serials 1000 rows', { done: 1003, total: 2000, tick: true })
  reporter.progress('backup: serials 1997 rows', { done: 2000, total: 2000 })
  reporter.end()
  await settle()
  t.equal(fake.text(), 'backup: clients 3 rows\nbackup: serials 1997 rows\n')
})
