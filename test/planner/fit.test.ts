import { test } from 'node:test'
import assert from 'node:assert/strict'
import { maxBatch, maxSeqLen } from '../../src/planner/fit.ts'
import { peakBytesOf } from '../../src/planner/peak.ts'
import { usableMemoryBytes } from '../../src/planner/overhead.ts'
import { recommend } from '../../src/planner/recommend.ts'
import type { Gpu } from '../../src/catalog/types.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { GIB } from '../../src/units.ts'
import { a100_80, seedInput, seedLora } from './fixtures.ts'

const small = (gib: number): Gpu => ({ ...a100_80, name: `test-${gib}GiB`, memoryBytes: gib * GIB })

const cases: [string, PlanInput][] = [
  ['seed qlora', seedInput],
  ['lora eager', seedLora],
  ['lora sdpa with checkpointing', { ...seedLora, attention: 'sdpa', gradientCheckpointing: true }],
]
for (const [name, input] of cases) {
  test(`${name}: maxSeqLen and maxBatch are the largest values that fit`, () => {
    const usable = usableMemoryBytes(input.gpu!)
    const seq = maxSeqLen(input)!
    assert.ok(seq > 0)
    assert.ok(peakBytesOf({ ...input, seq }) <= usable)
    if (seq < input.model.maxPositionEmbeddings) assert.ok(peakBytesOf({ ...input, seq: seq + 1 }) > usable)
    const batch = maxBatch(input)!
    assert.ok(batch >= 1)
    assert.ok(peakBytesOf({ ...input, batch }) <= usable)
    assert.ok(peakBytesOf({ ...input, batch: batch + 1 }) > usable)
  })
}

test('a budget lowers the limits; nothing fitting gives 0; no GPU gives null', () => {
  const full = maxSeqLen(seedLora)!
  assert.ok(maxSeqLen(seedLora, { budgetBytes: 40 * GIB })! < full)
  assert.equal(maxSeqLen(seedLora, { budgetBytes: 1 * GIB }), 0)
  assert.equal(maxSeqLen({ ...seedLora, gpu: null }), null)
  assert.equal(maxBatch({ ...seedLora, gpu: null }), null)
})

test('peak grows with seq and batch (the searches rely on it)', () => {
  let last = 0
  for (const seq of [1, 64, 512, 2048, 4096, 16384]) {
    const peak = peakBytesOf({ ...seedLora, seq })
    assert.ok(peak > last)
    last = peak
  }
  assert.ok(peakBytesOf({ ...seedInput, batch: 3 }) > peakBytesOf({ ...seedInput, batch: 2 }))
})

test('recommend: fits within the safety margin and explains every knob once', () => {
  const rec = recommend(seedInput)!
  assert.ok(rec)
  const budget = usableMemoryBytes(a100_80) * 0.9
  assert.ok(rec.plan.peakBytes <= budget)
  assert.ok(rec.candidatesSearched >= 10_000, `${rec.candidatesSearched}`)
  const knobs = rec.reasons.map((r) => r.knob)
  assert.deepEqual(new Set(knobs).size, knobs.length)
  for (const k of ['method', 'quant', 'batch', 'gradientCheckpointing', 'attention', 'optimizer', 'rank', 'env']) assert.ok(knobs.includes(k), k)
  assert.equal(rec.env.PYTORCH_CUDA_ALLOC_CONF, 'expandable_segments:True')
  assert.ok(rec.input.rank >= 8 && rec.input.rank <= 64)
  assert.ok(rec.input.batch > 1, 'memory allows a batch above 1')
})

test('recommend: QLoRA when 16-bit LoRA does not fit, and says so', () => {
  const rec = recommend({ ...seedInput, gpu: small(8) }, { seq: 1024 })!
  assert.ok(rec)
  assert.equal(rec.input.method, 'qlora')
  const method = rec.reasons.find((r) => r.knob === 'method')!
  assert.match(method.message, /LoRA in 16-bit needs .* GiB even at batch 1/)
})

test('recommend: a larger safety margin never picks a bigger batch', () => {
  const loose = recommend(seedInput, { safetyMargin: 0.05 })!
  const tight = recommend(seedInput, { safetyMargin: 0.4 })!
  assert.ok(tight.input.batch * tight.input.seq <= loose.input.batch * loose.input.seq)
  assert.ok(tight.plan.peakBytes <= usableMemoryBytes(a100_80) * 0.6)
})

test('recommend: max-context finds a longer sequence than the throughput goal uses', () => {
  const rec = recommend(seedInput, { goal: 'max-context' })!
  assert.ok(rec.input.seq > seedInput.seq)
  assert.equal(rec.input.batch, 1)
})

test('recommend: null when nothing fits or there is no GPU', () => {
  assert.equal(recommend({ ...seedInput, gpu: small(1) }), null)
  assert.equal(recommend({ ...seedInput, gpu: null }), null)
})
