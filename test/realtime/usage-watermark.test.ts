// The usage watermark from readings (sequence value, then the transactions holding usage_events'
// insert lock): a seq is released once every transaction that could hold one at or below it ended.
import t from 'tap'
import { HOLD_MAX_MS, Watermark } from '../../src/domain/usage/usage-feed.ts'

t.test('a reading without open transactions releases its seq at once', async (t) => {
  const mark = new Watermark()
  t.equal(mark.observe({ seq: 0, holders: [] }, 0), 0, 'an empty table')
  t.equal(mark.observe({ seq: 41, holders: [] }, 1), 41)
  t.equal(mark.waiting, false)
})

t.test('a reading waits for the transactions open when it was taken, and only for those', async (t) => {
  const mark = new Watermark()
  t.equal(mark.observe({ seq: 10, holders: ['3/1'] }, 0), -1, '3/1 may hold a seq up to 10')
  t.equal(mark.observe({ seq: 12, holders: ['3/1', '4/7'] }, 1), -1, 'still open')
  t.equal(mark.observe({ seq: 12, holders: ['4/7', '5/2'] }, 2), 10, '3/1 ended: up to 10 is final; 4/7 may hold 11 or 12')
  // 5/2 was not open when 12 was read with 4/7: its seqs are above 12, so it does not hold 12 back.
  t.equal(mark.observe({ seq: 15, holders: ['5/2', '6/9'] }, 3), 12, '4/7 ended: up to 12, although 5/2 is still open')
  t.equal(mark.observe({ seq: 15, holders: ['6/9'] }, 4), 12, 'up to 15 waits for 6/9 too')
  t.equal(mark.observe({ seq: 16, holders: [] }, 5), 16, 'nothing open: up to the sequence')
  t.equal(mark.waiting, false)
  t.same(mark.takeAbandoned(), [])
})

t.test('a transaction open longer than HOLD_MAX_MS is no longer waited for, and is reported once', async (t) => {
  const mark = new Watermark()
  t.equal(mark.observe({ seq: 5, holders: ['9/1'] }, 0), -1)
  t.equal(mark.observe({ seq: 8, holders: ['9/1'] }, HOLD_MAX_MS), -1, 'at the limit it is still waited for')
  t.equal(mark.observe({ seq: 9, holders: ['9/1', '2/2'] }, HOLD_MAX_MS + 1), 8, 'past it, up to 8 (what only 9/1 held back); 9 waits for 2/2')
  t.same(mark.takeAbandoned(), ['9/1'])
  t.equal(mark.observe({ seq: 9, holders: ['9/1'] }, HOLD_MAX_MS + 2), 9, 'only the abandoned one left')
  t.same(mark.takeAbandoned(), [], 'reported once')
})
