// CPU-specific planner rules (device 'cpu'), each checked against what it claims; the figures
// they come from are in bench/results/cpu-memory-accuracy.json and docs/accuracy.md (CPU section).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BACKWARD_MLP_GRADS, layerActivations, QUANT_SAVES_INPUT, type ActivationOptions } from '../../src/planner/activations.ts'
import { optimizerTerms } from '../../src/planner/optimizer.ts'
import { HEADROOM_PATH, memoryTerms } from '../../src/planner/peak.ts'
import { modelShape } from '../../src/planner/shape.ts'
import { matchTargets } from '../../src/planner/targets.ts'
import { phi3Mini, seedInput } from './fixtures.ts'

test('cpu: fused AdamW step adds no temporaries; cuda keeps one parameter-sized buffer', () => {
  const params = 1_000_000
  assert.equal(optimizerTerms('adamw', params, 4, 4096, 'cpu').stepTransientBytes, 0)
  assert.equal(optimizerTerms('adamw', params, 4, 4096, 'cpu').stateBytes, 2 * 4 * params)
  assert.equal(optimizerTerms('adamw', params, 4, 4096, 'cuda').stepTransientBytes, 4 * params)
})

test('cpu: full fine-tuning at the optimizer step is weights + gradients + 2 x AdamW state', () => {
  // Tiny batch: optimizer.step() is the peak; P parameters of 4 B each -> 4 x 4P.
  const terms = memoryTerms({ ...seedInput, method: 'full', quant: 'none', doubleQuant: false, dtype: 'fp32', device: 'cpu', gpu: null, batch: 1, seq: 1 })
  assert.equal(terms.moment, 'step')
  assert.equal(terms.peakAllocatedBytes, 4 * 4 * phi3Mini.params)
})

const shape = modelShape(phi3Mini)
const match = matchTargets(shape, ['o_proj', 'down_proj'])
const opts = (o: Partial<ActivationOptions>): ActivationOptions => ({
  method: 'lora', dtype: 'fp32', quant: 'none', kbitPrepared: false, attention: 'sdpa', gradientCheckpointing: false, rank: 8, quantSavesInput: false, loraDropout: 0, device: 'cpu', ...o,
})

test('4-bit Linears save no input (bitsandbytes 0.50.2 on every device), so prepared QLoRA saves what an fp32 LoRA saves', () => {
  assert.equal(QUANT_SAVES_INPUT, false)
  assert.equal(HEADROOM_PATH.quantSavesInput, false)
  const lora = layerActivations(shape, match, opts({}))
  const qlora = layerActivations(shape, match, opts({ method: 'qlora', quant: 'nf4', kbitPrepared: true }))
  assert.equal(qlora.bytesPerToken, lora.bytesPerToken)
  assert.equal(qlora.dequantBytes, shape.largestLinearParams * 4)
  // An older bitsandbytes that kept A = x.to(compute dtype) adds a compute-dtype copy per 4-bit module (fp32 stream, bf16 compute).
  const bf16Lora = layerActivations(shape, match, opts({ dtype: 'bf16' }))
  const prepared = layerActivations(shape, match, opts({ dtype: 'bf16', method: 'qlora', quant: 'nf4', kbitPrepared: true }))
  const older = layerActivations(shape, match, opts({ dtype: 'bf16', method: 'qlora', quant: 'nf4', kbitPrepared: true, quantSavesInput: true }))
  const h = phi3Mini.hiddenSize
  assert.equal(older.bytesPerToken - prepared.bytesPerToken, 2 * (h + h + h + phi3Mini.intermediateSize)) // qkv, o, gate_up, down inputs in bf16
  // peft's preparation makes the stream fp32: its saved tensors are larger than a bf16 LoRA's.
  assert.ok(prepared.bytesPerToken > 1.5 * bf16Lora.bytesPerToken)
})

test("one block's backward needs the gated MLP's gradient buffers, not a whole block", () => {
  const block = layerActivations(shape, match, opts({}))
  assert.equal(block.backwardBytesPerToken, BACKWARD_MLP_GRADS * phi3Mini.intermediateSize * 4)
  assert.equal(block.backwardBytesPerTokenSeq, 0)
  assert.equal(layerActivations(shape, match, opts({ attention: 'eager' })).backwardBytesPerTokenSeq, phi3Mini.numAttentionHeads * 4)
  assert.ok(block.backwardBytesPerToken < block.bytesPerToken)
})

test('8-bit Linears keep their input (bitsandbytes 0.50.2 MatMul8bitLt saves A itself), 4-bit ones do not', () => {
  const nf4 = layerActivations(shape, match, opts({ dtype: 'bf16', method: 'qlora', quant: 'nf4', kbitPrepared: true }))
  const int8 = layerActivations(shape, match, opts({ dtype: 'bf16', method: 'qlora', quant: 'int8', kbitPrepared: true }))
  // LoRA on o_proj and down_proj already keeps those inputs (fp32 stream = adapter dtype): int8 adds qkv's and gate_up's.
  assert.equal(int8.bytesPerToken - nf4.bytesPerToken, 2 * 4 * phi3Mini.hiddenSize)
})
