// PlanPath.quantizeOnDeviceBytesPerElement (opt-in, bench-only: torchtune's QLoRA quantizes each Linear on the GPU with
// the rest of the model resident). Absent, the plan is Headroom's; present, the peak is the larger of that load moment
// and the training step, and only quantized adapters (QLoRA) have such a moment.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HEADROOM_PATH, memoryTerms, type PlanPath } from '../../src/planner/peak.ts'
import { modelShape } from '../../src/planner/shape.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { llama2_7b, seedInput } from './fixtures.ts'

const BARE: PlanPath = { kbitPrepared: false, quantSavesInput: false }
const qlora: PlanInput = {
  ...seedInput, model: llama2_7b, method: 'qlora', quant: 'nf4', doubleQuant: true, targets: 'all-linear',
  batch: 2, seq: 512, gradientCheckpointing: true, attention: 'sdpa', gpu: null,
}
const largest = modelShape(llama2_7b).largestLinearParams

test('absent, the field changes nothing: Headroom path and a bare path plan the training step', () => {
  const base = memoryTerms(qlora, BARE)
  assert.notEqual(base.moment, 'load')
  assert.deepEqual(memoryTerms(qlora, { ...BARE, quantizeOnDeviceBytesPerElement: undefined }), base)
  assert.equal(HEADROOM_PATH.quantizeOnDeviceBytesPerElement, undefined)
})

test('a large conversion working set makes the load the peak: resident weights + adapters + k x the largest Linear', () => {
  const train = memoryTerms(qlora, BARE)
  const k = 68
  const t = memoryTerms(qlora, { ...BARE, quantizeOnDeviceBytesPerElement: k })
  assert.equal(t.moment, 'load')
  assert.equal(t.breakdown.weights, train.breakdown.weights + Math.round(k * largest))
  assert.equal(t.breakdown.adapters, train.breakdown.adapters)
  assert.equal(t.breakdown.activations + t.breakdown.gradients + t.breakdown.optimizer + t.breakdown.logits, 0)
  assert.ok(t.peakBytes > train.peakBytes)
  // Twice the working set: the load moment grows by exactly the extra bytes (plus the allocator slack on them).
  const t2 = memoryTerms(qlora, { ...BARE, quantizeOnDeviceBytesPerElement: 2 * k })
  assert.equal(t2.peakAllocatedBytes - t.peakAllocatedBytes, Math.round(2 * k * largest) - Math.round(k * largest))
})

test('a small working set leaves the training step as the peak, unchanged', () => {
  const train = memoryTerms(qlora, BARE)
  const t = memoryTerms(qlora, { ...BARE, quantizeOnDeviceBytesPerElement: 0.001 })
  assert.deepEqual(t, train)
})

test('LoRA and full fine-tuning quantize nothing: no load moment whatever the field says', () => {
  for (const input of [{ ...qlora, method: 'lora', quant: 'none', doubleQuant: false }, { ...qlora, method: 'full', quant: 'none', doubleQuant: false }] as PlanInput[]) {
    assert.deepEqual(memoryTerms(input, { ...BARE, quantizeOnDeviceBytesPerElement: 68 }), memoryTerms(input, BARE), input.method)
  }
})
