/** A distributed run reported to the server: per-rank memory in /metrics (a `rank` label), one
 * chart series (rank 0's), the run's peak over all ranks, and per-rank peaks in the run view's data. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cannedEvents, GIB, json, makeApp } from './helpers.ts'
import { twoRankEvents } from './two-rank-events.ts'

test('per-rank memory gauges carry a rank label; the run series follow rank 0', async () => {
  const { app } = makeApp()
  const res = await app.request('/v1/runs/d-1/events', json({ events: twoRankEvents(3).filter((e) => e.type !== 'done') }))
  assert.ok(res.ok, await res.text())
  const text = await (await app.request('/metrics')).text()
  for (const rank of ['0', '1']) {
    for (const name of ['headroom_rank_memory_allocated_bytes', 'headroom_rank_memory_peak_allocated_bytes', 'headroom_rank_device_memory_used_bytes']) {
      assert.match(text, new RegExp(`^${name}\\{run="d-1",device="cuda",rank="${rank}"\\} [0-9.e+-]+$`, 'm'), `${name} rank ${rank}`)
    }
  }
  const value = (line: RegExp) => Number(line.exec(text)?.[1])
  assert.equal(value(/^headroom_rank_memory_peak_allocated_bytes\{run="d-1",device="cuda",rank="1"\} (\S+)$/m), Math.round(9.1 * GIB))
  // The run's own series is rank 0's, not whichever rank reported last.
  assert.equal(value(/^headroom_memory_peak_allocated_bytes\{run="d-1",device="cuda"\} (\S+)$/m), Math.round(8.9 * GIB))
  // A one-process run gets no per-rank series.
  await app.request('/v1/runs/single/events', json({ events: cannedEvents(2) }))
  assert.doesNotMatch(await (await app.request('/metrics')).text(), /rank_memory[^\n]*run="single"/)
})

test('the store keeps one sample per step (rank 0) and the run peak over every rank', async () => {
  const { app, store } = makeApp()
  await app.request('/v1/runs/d-2/events', json({ events: twoRankEvents(4) }))
  const run = (await (await app.request('/v1/runs/d-2')).json()) as Record<string, any>
  assert.equal(run.steps, 4)
  assert.equal(run.measuredPeakBytes, Math.round(9.1 * GIB), 'the run peak is the largest rank peak')
  assert.deepEqual(run.summary.measuredPeakBytesPerRank, [Math.round(8.9 * GIB), Math.round(9.1 * GIB)])
  assert.equal(run.summary.ranks, 2)
  const list = store.samples('d-2')
  assert.deepEqual(list.map((s) => s.step), [1, 2, 3, 4])
  assert.ok(list.every((s) => s.peakAllocatedBytes === Math.round(8.9 * GIB)), 'rank 0 samples only')
})
