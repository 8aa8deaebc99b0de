// What `headroom tune` prints: progress lines and the closing report.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { bar, logEvery, progressLine, ratio, summaryLines } from '../../src/runtime/progress.ts'
import type { StepEvent } from '../../src/runtime/events.ts'

const step: StepEvent = {
  t: 0, type: 'step', step: 37, totalSteps: 100, loss: 4.21349, lr: 1e-4, tokens: 512, seqLen: 64, tokensPerSecond: 1234.4,
  memory: { allocatedBytes: 1, reservedBytes: 1, peakAllocatedBytes: 40 * 2 ** 20, deviceUsedBytes: 1 },
}

test('progress line: step/total, loss, tokens/s, measured against predicted peak', () => {
  assert.equal(progressLine(step, 50 * 2 ** 20, false), 'step 37/100 · loss 4.213 · 1,234 tok/s · peak 40.0 MiB / predicted 50.0 MiB (0.80x)')
  assert.match(progressLine(step, null), /^step 37\/100 \[█{9}░{15}\] .* peak 40\.0 MiB$/)
})

test('bar, ratio and the non-TTY interval', () => {
  assert.equal(bar(0, 10, 4), '[░░░░]')
  assert.equal(bar(10, 10, 4), '[████]')
  assert.equal(bar(20, 10, 4), '[████]')
  assert.equal(ratio(90, 100), '0.90x')
  assert.equal(ratio(null, 100), 'n/a')
  assert.equal(logEvery(100), 10)
  assert.equal(logEvery(3), 1)
})

test('closing report names the ratio, both losses and the adapter', () => {
  const lines = summaryLines(
    { state: 'succeeded', steps: 10, firstLoss: 7, lastLoss: 3.5, adapterDir: '/out', device: 'cpu', predictedPeakBytes: 100 * 2 ** 20, measuredPeakBytes: 95 * 2 ** 20 },
    { runDir: '/out', seconds: 12.34 },
  )
  assert.equal(lines[0], 'run succeeded after 10 steps on cpu in 12.3 s')
  assert.equal(lines[1], 'loss: first 7.0000, last 3.5000 (50% of the first)')
  assert.match(lines[2], /predicted 100 MiB \(104,857,600 B\).*measured 95\.0 MiB \(99,614,720 B\), measured\/predicted 0\.95x$/)
  assert.equal(lines[3], 'adapter: /out')
})
