// LoRA dropout (PlanInput.loraDropout): nothing at p = 0 (peft builds nn.Identity), and at p > 0 a dropped fp32 copy of
// each adapted module's input plus the dropout's mask, per token, in every block without checkpointing and only in the
// recomputed block with it. The CPU figures this was fitted to are in docs/accuracy.md ("LoRA dropout").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { activationTerms, dropoutMaskBytesPerElement, layerActivations, type ActivationOptions } from '../../src/planner/activations.ts'
import { memoryTerms } from '../../src/planner/peak.ts'
import { modelShape } from '../../src/planner/shape.ts'
import { matchTargets } from '../../src/planner/targets.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { phi3Mini, seedInput } from './fixtures.ts'

const shape = modelShape(phi3Mini)
// o_proj reads the attention output (q = 3,072 wide), down_proj the gated product (intermediate 8,192 wide).
const match = matchTargets(shape, ['o_proj', 'down_proj'])
const ADAPTED_INPUT_WIDTH = 3072 + 8192
const opts = (o: Partial<ActivationOptions>): ActivationOptions => ({
  method: 'lora', dtype: 'bf16', quant: 'none', kbitPrepared: false, attention: 'sdpa', gradientCheckpointing: false, rank: 8,
  quantSavesInput: false, loraDropout: 0, device: 'cuda', ...o,
})
const perToken = (o: Partial<ActivationOptions>) => layerActivations(shape, match, opts(o)).bytesPerToken

test('the mask is torch native_dropout\'s bool on CUDA (1 B) and the fp32 noise of the CPU path (4 B)', () => {
  assert.equal(dropoutMaskBytesPerElement('cuda'), 1)
  assert.equal(dropoutMaskBytesPerElement('cpu'), 4)
})

test('p = 0 keeps nothing extra; every p > 0 keeps the same (the mask and the copy do not shrink with p)', () => {
  for (const device of ['cuda', 'cpu'] as const) {
    const none = perToken({ device })
    const small = perToken({ device, loraDropout: 0.05 })
    assert.ok(small > none, device)
    assert.equal(perToken({ device, loraDropout: 0.5 }), small, device)
    // Full fine-tuning has no LoRA branch: the knob changes nothing.
    assert.equal(perToken({ device, method: 'full', loraDropout: 0.1 }), perToken({ device, method: 'full' }), device)
  }
})

test('bf16 LoRA: the fp32 cast copy lora_A kept becomes the dropped copy, so p > 0 adds the mask per adapted input element', () => {
  assert.equal(perToken({ loraDropout: 0.1 }) - perToken({}), 1 * ADAPTED_INPUT_WIDTH)
  assert.equal(perToken({ device: 'cpu', loraDropout: 0.1 }) - perToken({ device: 'cpu' }), 4 * ADAPTED_INPUT_WIDTH)
})

test('QLoRA (fp32 stream after k-bit preparation): lora_A kept the stream itself, so p > 0 adds a new fp32 copy beside the mask', () => {
  const q = { method: 'qlora', quant: 'nf4', kbitPrepared: true } as const
  // (4 B copy + mask) per element, less the 4 B stream tensor nothing else keeps once lora_A reads the dropped copy.
  assert.equal(perToken({ ...q, loraDropout: 0.05 }) - perToken(q), (4 + 1 - 4) * ADAPTED_INPUT_WIDTH)
  assert.equal(perToken({ ...q, device: 'cpu', loraDropout: 0.05 }) - perToken({ ...q, device: 'cpu' }), (4 + 4 - 4) * ADAPTED_INPUT_WIDTH)
  // All four Phi-3 Linears, CPU, as measured with MemTracker (docs/accuracy.md, "LoRA dropout"): 69,632 B per token per
  // block, and 12,288 less in block 0, whose qkv_proj input needs no gradient (no mask): 57,344 on a one-block model.
  const all = matchTargets(shape, 'all-linear')
  const with01 = layerActivations(shape, all, opts({ ...q, device: 'cpu', loraDropout: 0.1 }))
  assert.equal(with01.bytesPerToken - layerActivations(shape, all, opts({ ...q, device: 'cpu' })).bytesPerToken, 4 * (3072 + 3072 + 3072 + 8192))
  assert.equal(with01.firstBlockNoMaskBytesPerToken, 4 * 3072)
  assert.equal(layerActivations(shape, all, opts({ ...q, device: 'cpu' })).firstBlockNoMaskBytesPerToken, 0)
})

test('checkpointing: only the recomputed block holds the dropout tensors, so its share of the plan is one block\'s', () => {
  const tokens = 2048
  const layers = phi3Mini.numLayers
  const diff = (gc: boolean) => {
    const a = activationTerms(layerActivations(shape, match, opts({ gradientCheckpointing: gc })), layers, 1, tokens, gc)
    const b = activationTerms(layerActivations(shape, match, opts({ gradientCheckpointing: gc, loraDropout: 0.1 })), layers, 1, tokens, gc)
    return { held: b.heldBytes - a.heldBytes, block: b.layerBackwardBytes - a.layerBackwardBytes }
  }
  const off = diff(false)
  const on = diff(true)
  // Block 0's o_proj input needs no gradient without checkpointing: its 3,072-wide mask is not kept.
  assert.deepEqual(off, { held: layers * tokens * ADAPTED_INPUT_WIDTH - tokens * 3072, block: 0 })
  // With it, down_proj's dropped copy and mask are freed by its own backward, the first the recomputed block runs,
  // before the gated product's gradient buffers exist: only o_proj's (1 B of mask per element on CUDA) are left then.
  assert.deepEqual(on, { held: 0, block: tokens * 3072 })
})

test('through the whole plan: the seed\'s QLoRA peaks at the loss, where no dropout tensor is alive; a LoRA without checkpointing grows by the term', () => {
  const seed = memoryTerms(seedInput)
  const seedDropout = memoryTerms({ ...seedInput, loraDropout: 0.05 })
  // The recomputed block's backward frees down_proj's input before its gradient buffers and dequantized weights exist,
  // so at 2,048 tokens it stays under the loss's logits (measured at these widths: bench/qlora-cpu-measure.ts, the
  // checkpointed rows peak at the loss); the dropout tensors live in the block, not at the loss.
  assert.equal(seed.moment, 'loss')
  assert.equal(seedDropout.moment, 'loss')
  assert.equal(seedDropout.peakBytes, seed.peakBytes)
  // Where the block does set the peak (a longer eager sequence), the dropout tensors lift it.
  const eager = { ...seedInput, attention: 'eager' as const, seq: 8192 }
  assert.equal(memoryTerms(eager).moment, 'block')
  assert.ok(memoryTerms({ ...eager, loraDropout: 0.05 }).peakBytes > memoryTerms(eager).peakBytes)

  const lora: PlanInput = { ...seedInput, method: 'lora', quant: 'none', doubleQuant: false, gradientCheckpointing: false, targets: ['o_proj', 'down_proj'] }
  const base = memoryTerms(lora)
  const withDropout = memoryTerms({ ...lora, loraDropout: 0.05 })
  // bf16 LoRA on CUDA: 1 B of mask per adapted input element, per token, in each of the 32 blocks but block 0's o_proj.
  const tokens = lora.batch * lora.seq
  assert.equal(withDropout.breakdown.activations - base.breakdown.activations, phi3Mini.numLayers * tokens * ADAPTED_INPUT_WIDTH - tokens * 3072)
})
