// The bounded line reader of export and backup files: a line, the whole text and the compression
// ratio each have a bound that stops the read as soon as it is passed.
import { Readable } from 'node:stream'
import t from 'tap'
import { boundedLines, parseByteSize, type LineBounds } from '../../src/domain/operations/bounded-lines.ts'

const error = (message: string) => new Error(message)

async function read (chunks: Array<Buffer | string>, bounds: Partial<LineBounds> = {}): Promise<string[]> {
  const out: string[] = []
  for await (const line of boundedLines(Readable.from(chunks.map((c) => Buffer.from(c))), { maxLineBytes: 8, maxBytes: 64, error, ...bounds })) out.push(line)
  return out
}

t.test('lines', async (t) => {
  t.same(await read(['ab\ncd', 'e\n', 'last']), ['ab', 'cde', 'last'], 'split across chunks; a last line without newline')
  t.same(await read(['\n\n']), ['', ''], 'empty lines')
  t.same(await read([Buffer.from('é\n').subarray(0, 1), Buffer.from('é\n').subarray(1)]), ['é'], 'a character split across chunks')
  t.same(await read(['12345678\n']), ['12345678'], 'a line of exactly the bound')
  await t.rejects(read(['123456789\n']), /a line is longer than 8 bytes/)
  await t.rejects(read(['12345', '6789']), /a line is longer than 8 bytes/, 'also without a newline, across chunks')
  await t.rejects(read([Buffer.from([0x61, 0xff, 0x0a])]), /not UTF-8/)
  await t.rejects(read(['1234567\n'.repeat(9)]), /more than 64 bytes of text/)
})

t.test('the bound stops the read: an endless source ends', async (t) => {
  let served = 0
  const endless = new Readable({ read () { served++; this.push(Buffer.alloc(65_536)) } })
  await t.rejects((async () => { const lines = boundedLines(endless, { maxLineBytes: 1 << 20, maxBytes: 1 << 30, error }); await lines.next() })(), /longer than 1 MiB/)
  t.ok(served <= 20, `read ${served} chunks of 64 KiB, not more`)
  endless.destroy()
})

t.test('the ratio bound', async (t) => {
  let compressed = 1
  const bounds = { maxRatio: { ratio: 10, compressedBytes: () => compressed, ratioAfterBytes: 16 }, maxLineBytes: 100, maxBytes: 1000 }
  await t.rejects(read(['aaaa\n'.repeat(10)], bounds), /inflates more than 10 times/)
  compressed = 10
  t.equal((await read(['aaaa\n'.repeat(10)], bounds)).length, 10, 'under the ratio')
})

t.test('parseByteSize', async (t) => {
  t.equal(parseByteSize('1073741824'), 1073741824)
  t.equal(parseByteSize('512MiB'), 512 * 1024 * 1024)
  t.equal(parseByteSize('1 GiB'), 1024 ** 3)
  t.equal(parseByteSize('2g'), 2 * 1024 ** 3)
  for (const bad of ['', 'lots', '0', '-1', '1.5GiB', '1 PB', '9'.repeat(20)]) t.equal(parseByteSize(bad), undefined, bad)
})
