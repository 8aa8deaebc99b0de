// PlanPath.quantizedHeadDequantBytesPerElement, PlanPath.keepsPreviousStepGraph and PlanPath.chunkedHeadLoop (opt-in,
// bench-only: lightning fabric's BitsandbytesPrecision quantizes lit-gpt's lm_head too; litgpt 2024 keeps each step's
// logits, and so its graph with bitsandbytes 0.42's ctx.tensors = (A, B), until the next forward returns; Fabric casts
// the loop's 128-token logit chunks to float32). Absent, the plan is Headroom's;
// present, the end of the forward is a moment of its own, and its terms are exactly the ones the fields name.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { layerActivations } from '../../src/planner/activations.ts'
import { HEADROOM_PATH, memoryTerms, type ChunkedHeadLoop, type PlanPath } from '../../src/planner/peak.ts'
import { modelShape } from '../../src/planner/shape.ts'
import { matchTargets } from '../../src/planner/targets.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { quantBytesPerParam } from '../../src/planner/weights.ts'
import { llama2_7b, seedInput } from './fixtures.ts'

const LITGPT: PlanPath = { kbitPrepared: false, quantSavesInput: true }
const FABRIC_LOOP: ChunkedHeadLoop = { heldBytesPerLogit: 4, lossSavedBytesPerLogit: 4, chunkTokens: 128 }
const qlora: PlanInput = {
  ...seedInput, model: llama2_7b, method: 'qlora', quant: 'nf4', doubleQuant: false, targets: ['q_proj', 'v_proj'],
  batch: 2, seq: 512, gradientCheckpointing: false, attention: 'sdpa', gpu: null, loraDropout: 0.05, dtype: 'bf16', device: 'cuda',
}
const h = llama2_7b.hiddenSize
const I = llama2_7b.intermediateSize
const V = llama2_7b.vocabSize
const L = llama2_7b.numLayers
const tokens = qlora.batch * qlora.seq

test('the 4-bit matmuls keep one bf16 input per Linear role: 2 x (3h + I) B per token on Llama-2-7B, 0 when they keep none', () => {
  const shape = modelShape(llama2_7b)
  const match = matchTargets(shape, qlora.targets)
  const o = { method: 'qlora', dtype: 'bf16', quant: 'nf4', kbitPrepared: false, attention: 'sdpa', gradientCheckpointing: false, rank: 8, quantSavesInput: true, loraDropout: 0.05, device: 'cuda', adapterBytes: 2 } as const
  assert.equal(layerActivations(shape, match, o).quantInputBytesPerToken, 2 * (3 * h + I))
  assert.equal(layerActivations(shape, match, { ...o, quantSavesInput: false }).quantInputBytesPerToken, 0)
  assert.equal(layerActivations(shape, match, { ...o, method: 'lora', quant: 'none' }).quantInputBytesPerToken, 0)
})

test('absent, the fields change nothing: Headroom plans never have a forward moment', () => {
  assert.equal(HEADROOM_PATH.quantizedHeadDequantBytesPerElement, undefined)
  assert.equal(HEADROOM_PATH.keepsPreviousStepGraph, undefined)
  assert.deepEqual(memoryTerms(qlora, { ...LITGPT, keepsPreviousStepGraph: false }), memoryTerms(qlora, LITGPT))
  for (const input of [qlora, { ...qlora, method: 'lora', quant: 'none' }, { ...qlora, gradientCheckpointing: true }] as PlanInput[]) {
    assert.notEqual(memoryTerms(input).moment, 'forward')
  }
})

test('a 4-bit head: its weight counts at 4-bit, and its dequantized copy is alive at the end of the forward', () => {
  const base = memoryTerms(qlora, LITGPT)
  const k = 4
  const t = memoryTerms(qlora, { ...LITGPT, quantizedHeadDequantBytesPerElement: k })
  const saving = llama2_7b.lmHeadParams * (2 - quantBytesPerParam('nf4', false, 'bf16'))
  const dequant = k * llama2_7b.lmHeadParams
  assert.equal(t.moment, 'forward')
  assert.equal(t.breakdown.weights, Math.round(base.breakdown.weights - saving + dequant))
  // The head's output is the logits in the stream's dtype (bf16), once: no previous step here.
  assert.equal(t.breakdown.logits, tokens * V * 2)
  // LoRA and full fine-tuning quantize nothing: the field does nothing.
  const lora = { ...qlora, method: 'lora', quant: 'none' } as PlanInput
  assert.deepEqual(memoryTerms(lora, { ...LITGPT, quantizedHeadDequantBytesPerElement: k }), memoryTerms(lora, LITGPT))
})

test("the previous step's graph: its logits and every block's 4-bit inputs join this step's at the end of the forward", () => {
  const head = { ...LITGPT, quantizedHeadDequantBytesPerElement: 4 }
  const one = memoryTerms(qlora, head)
  const two = memoryTerms(qlora, { ...head, keepsPreviousStepGraph: true })
  assert.equal(two.moment, 'forward')
  assert.equal(two.breakdown.logits - one.breakdown.logits, tokens * V * 2)
  // Every block's kept inputs, 2 x (3h + I) B per token, and the 4-bit head's (the final norm's bf16 output).
  assert.equal(two.breakdown.activations - one.breakdown.activations, tokens * (L * 2 * (3 * h + I) + 2 * h))
  assert.equal(two.peakAllocatedBytes - one.peakAllocatedBytes, tokens * V * 2 + tokens * (L * 2 * (3 * h + I) + 2 * h))
  // Half the tokens, half the previous step: the terms are per token.
  const half = memoryTerms({ ...qlora, batch: 1 }, { ...head, keepsPreviousStepGraph: true })
  const halfOne = memoryTerms({ ...qlora, batch: 1 }, head)
  assert.equal(half.breakdown.logits - halfOne.breakdown.logits, (tokens / 2) * V * 2)
})

test('LoRA with the previous step kept: only its bf16 logits are retained, and the loss stays the peak', () => {
  const lora = { ...qlora, method: 'lora', quant: 'none' } as PlanInput
  const t = memoryTerms(lora, { ...HEADROOM_PATH, keepsPreviousStepGraph: true })
  assert.equal(t.moment, 'loss')
  assert.deepEqual(t, memoryTerms(lora))
})

test("a chunked head loop replaces transformers' 12 B per logit at the loss: held + saved per logit, and one chunk's two gradients", () => {
  const lora = { ...qlora, method: 'lora', quant: 'none', seq: 2048 } as PlanInput
  const base = memoryTerms(lora, LITGPT)
  assert.equal(base.moment, 'loss')
  assert.equal(base.breakdown.logits, 2 * 2048 * V * 12)
  const t = memoryTerms(lora, { ...LITGPT, chunkedHeadLoop: FABRIC_LOOP })
  assert.equal(t.moment, 'loss')
  // 2 x 2,048 tokens x V x (4 + 4), and the 128-token chunk's incoming and outgoing fp32 gradients, for both rows of the batch.
  assert.equal(t.breakdown.logits, 2 * 2048 * V * 8 + 2 * 128 * V * 2 * 4)
  assert.equal(base.peakAllocatedBytes - t.peakAllocatedBytes, base.breakdown.logits - t.breakdown.logits)
  // A sequence shorter than a chunk is one chunk of its own length.
  const short = memoryTerms({ ...lora, seq: 64 }, { ...LITGPT, chunkedHeadLoop: FABRIC_LOOP })
  assert.equal(short.breakdown.logits, 2 * 64 * V * 8 + 2 * 64 * V * 2 * 4)
  // The chunked loss keeps its own buffers; Headroom has no loop.
  const chunked = { ...lora, loss: 'chunked' } as PlanInput
  assert.deepEqual(memoryTerms(chunked, { ...LITGPT, chunkedHeadLoop: FABRIC_LOOP }), memoryTerms(chunked, LITGPT))
  assert.equal(HEADROOM_PATH.chunkedHeadLoop, undefined)
})

test("a 4-bit head under a chunked head loop peaks in the head's backward: the held logits, their stream-dtype gradients and the dequantized head", () => {
  const head = { ...LITGPT, quantizedHeadDequantBytesPerElement: 4 }
  const forward = memoryTerms(qlora, head)
  const t = memoryTerms(qlora, { ...head, chunkedHeadLoop: FABRIC_LOOP })
  assert.equal(forward.moment, 'forward')
  assert.equal(t.moment, 'head')
  assert.equal(t.breakdown.logits, tokens * V * (4 + 2))
  assert.equal(t.breakdown.weights, forward.breakdown.weights)
  assert.equal(t.peakAllocatedBytes - forward.peakAllocatedBytes, tokens * V * 4)
})

test("the previous step's logits are kept as the loop holds them: float32 under Fabric, one more cast copy at the end of the forward", () => {
  const head = { ...LITGPT, quantizedHeadDequantBytesPerElement: 4, keepsPreviousStepGraph: true }
  const bf16 = memoryTerms(qlora, head)
  const t = memoryTerms(qlora, { ...head, chunkedHeadLoop: FABRIC_LOOP })
  assert.equal(t.moment, 'forward')
  // The head's last chunk: this step's bf16 output and the previous step's fp32 logits.
  assert.equal(t.breakdown.logits, tokens * V * (2 + 4))
  assert.equal(t.breakdown.logits - bf16.breakdown.logits, tokens * V * 2)
  // LoRA (no 4-bit head): the end of the cast, this step's bf16 output, its fp32 copy and the previous fp32 logits,
  // against the loss's 8 B per logit and a chunk: at 512 tokens a chunk is a quarter of them, 2 B per logit more.
  const lora = { ...qlora, method: 'lora', quant: 'none' } as PlanInput
  const kept = memoryTerms(lora, { ...HEADROOM_PATH, keepsPreviousStepGraph: true, chunkedHeadLoop: FABRIC_LOOP })
  const loss = memoryTerms(lora, { ...HEADROOM_PATH, chunkedHeadLoop: FABRIC_LOOP })
  assert.equal(loss.moment, 'loss')
  assert.equal(loss.breakdown.logits, tokens * V * 8 + 2 * 128 * V * 8)
  assert.equal(kept.breakdown.logits, Math.max(tokens * V * (2 + 4 + 4), loss.breakdown.logits))
})
