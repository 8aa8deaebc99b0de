// The recomputed block's backward under gradient checkpointing (docs/accuracy.md, "Checkpointed block backward"): the
// MLP's and attention's working sets are alive one after the other, never together, and with an fp32 stream the first
// norm's saved input is the checkpoint the held term already counts. Without checkpointing the terms are unchanged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { activationTerms, layerActivations, type ActivationOptions } from '../../src/planner/activations.ts'
import { archFromHfConfig } from '../../src/catalog/index.ts'
import { modelShape } from '../../src/planner/shape.ts'
import { matchTargets } from '../../src/planner/targets.ts'
import { phi3Mini } from './fixtures.ts'

const shape = modelShape(phi3Mini)
const match = matchTargets(shape, 'all-linear')
const h = phi3Mini.hiddenSize
const I = phi3Mini.intermediateSize
const a = phi3Mini.numAttentionHeads
const L = phi3Mini.numLayers
const qlora: ActivationOptions = {
  method: 'qlora', dtype: 'bf16', quant: 'nf4', kbitPrepared: true, attention: 'eager', gradientCheckpointing: true, rank: 8,
  quantSavesInput: false, loraDropout: 0, device: 'cpu',
}

test('checkpointed QLoRA (fp32 stream): the block\'s backward Linear by Linear, each freeing what it saved, or the recompute\'s LoRA sum; plus the incoming gradient', () => {
  const layer = layerActivations(shape, match, qlora)
  // down_proj keeps its fp32 input (the LoRA cast is a no-op on an fp32 stream) and lora_A's r-wide output.
  const downSaved = I * 4 + 8 * 4
  assert.equal(layer.mlpOutSavedBytesPerToken, downSaved)
  assert.equal(layer.mlpOutDequantBytes, I * h * 2) // down_proj's bf16 weight, not gate_up_proj's (2·I·h)
  assert.equal(layer.mlpInDequantBytes, 2 * I * h * 2)
  for (const seq of [64, 512, 2048, 16384]) {
    const t = seq
    const block = t * layer.bytesPerToken + t * seq * layer.bytesPerTokenSeq - t * h * 4
    const afterOut = block - t * downSaved
    const outLinear = afterOut + t * I * (4 + 4) + I * h * 2 // its input's gradient (adapter branch + sum), its weight
    const gatedProduct = afterOut + t * 3 * I * 4 // gradients of the product, gate and up
    const afterMlp = afterOut - t * 3 * I * 4
    const inLinear = afterMlp + t * 2 * I * 4 + 2 * I * h * 2
    const attention = afterMlp + t * seq * a * 4 + 3 * h * h * 2 // qkv_proj (9,216 x 3,072)'s weight, the larger attention Linear
    const recompute = t * layer.recomputePeakBytesPerToken + t * seq * layer.bytesPerTokenSeq
    const got = activationTerms(layer, L, 1, seq, true).layerBackwardBytes
    assert.equal(got, Math.max(outLinear, gatedProduct, inLinear, attention, recompute) + t * 8 * h, `seq ${seq}`)
    // Never more than the old sum of both working sets and the largest weight on the whole block, plus the incoming gradient.
    assert.ok(got < t * layer.bytesPerToken + t * seq * layer.bytesPerTokenSeq + t * 3 * I * 4 + t * seq * a * 4 + layer.dequantBytes + t * 8 * h)
  }
  // Which moment wins moves with the length: at 64 tokens gate_up_proj's dequantized weight (2·I·h·2 B = 100.7 MB) beats
  // the per-token terms; at 4,096 attention's fp32 softmax gradient (a·4 B per token per token).
  const moment = (seq: number) => {
    const t = seq
    const block = t * layer.bytesPerToken + t * seq * layer.bytesPerTokenSeq - t * h * 4
    const afterMlp = block - t * downSaved - t * 3 * I * 4
    return { inLinear: afterMlp + t * 2 * I * 4 + 2 * I * h * 2, attention: afterMlp + t * seq * a * 4 + 3 * h * h * 2, recompute: t * layer.recomputePeakBytesPerToken + t * seq * layer.bytesPerTokenSeq }
  }
  const at = (seq: number) => activationTerms(layer, L, 1, seq, true).layerBackwardBytes - seq * 8 * h
  assert.equal(at(64), moment(64).inLinear)
  assert.equal(at(4096), moment(4096).attention)
  assert.ok(moment(64).inLinear > moment(64).attention && moment(4096).attention > moment(4096).recompute)
})

test('LoRA bf16 sdpa at Phi-3-mini\'s widths: the recompute\'s gate_up_proj LoRA sum is the block\'s peak (bench/block_peak.py)', () => {
  const lora = layerActivations(shape, match, { ...qlora, method: 'lora', quant: 'none', kbitPrepared: false, attention: 'sdpa' })
  // Saved before the MLP: norms 2·h·4, LoRA casts of qkv/o/gate_up 3·h·4 and r·4 each, attention q, k, fused qkv, output
  // (3·h + 9,216)·2 and the logsumexp a·4; the residual and normed input 2·h·2; the sum 2·I·(2 + 2·4).
  const before = 2 * h * 4 + 3 * (h * 4 + 8 * 4) + (3 * h + 9216) * 2 + a * 4 + 2 * h * 2
  assert.equal(lora.recomputePeakBytesPerToken, before + 2 * I * (2 + 2 * 4))
  assert.equal(lora.recomputePeakBytesPerToken, 274656) // measured 274,664 with the norms' 2 x 4 B rsqrt
  assert.equal(lora.gradStreamBytesPerToken, 24576) // measured: 12,288 fp32 + 2 x 6,144 bf16
  const seq = 8192
  assert.equal(activationTerms(lora, L, 1, seq, true).layerBackwardBytes, seq * (274656 + 24576))
  // Above the MLP phase the old term took (whole block + gradient buffers), by the LoRA sum's excess.
  assert.ok(lora.recomputePeakBytesPerToken > lora.bytesPerToken + lora.backwardBytesPerToken)
  // Full fine-tuning has no adapter sum: the term is the two phases as before.
  assert.equal(layerActivations(shape, match, { ...qlora, method: 'full', quant: 'none', kbitPrepared: false }).recomputePeakBytesPerToken, 0)
})

test('a bf16 stream makes the norm\'s own fp32 copy: nothing is shared with the checkpoint', () => {
  const lora = layerActivations(shape, match, { ...qlora, method: 'lora', quant: 'none', kbitPrepared: false })
  assert.equal(lora.checkpointSharedBytesPerToken, 0)
  assert.equal(layerActivations(shape, match, qlora).checkpointSharedBytesPerToken, h * 4)
})

test('without checkpointing both working sets are still added to the held blocks', () => {
  const layer = layerActivations(shape, match, { ...qlora, gradientCheckpointing: false })
  const seq = 2048
  const got = activationTerms(layer, L, 1, seq, false).layerBackwardBytes
  assert.equal(got, seq * layer.backwardBytesPerToken + seq * seq * layer.backwardBytesPerTokenSeq + layer.dequantBytes)
})

test('tiny Phi-3 QLoRA eager at 128 tokens: the block term meets the highest moment measured op by op (bench/block_phases.py)', () => {
  // .headroom/assets/tiny-phi3/config.json's shape.
  const tiny = archFromHfConfig({
    model_type: 'phi3', hidden_size: 256, intermediate_size: 768, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 4,
    vocab_size: 1024, max_position_embeddings: 512, tie_word_embeddings: false,
  }, 'tiny-phi3')
  const s = modelShape(tiny)
  const layer = layerActivations(s, matchTargets(s, 'all-linear'), qlora)
  // down_proj's own weight is the one dequantized beside its input's gradient, not gate_up_proj's twice larger one.
  assert.equal(layer.mlpOutDequantBytes, 768 * 256 * 2)
  assert.equal(layer.mlpInDequantBytes, 1536 * 256 * 2)
  const got = activationTerms(layer, 4, 1, 128, true).layerBackwardBytes - 128 * layer.gradStreamBytesPerToken
  // Measured above the live bytes before the top block recomputes (which hold the incoming gradient): 3,814,400 B at
  // the recompute's LoRA sum, 3,716,096 in down_proj's backward and in the gated product's (docs/accuracy.md, "The MLP's
  // backward, Linear by Linear"). The term before this change, whole block + 3·I·S + the largest weight, was 4,997,120.
  assert.ok(Math.abs(got - 3_814_400) / 3_814_400 < 0.01, `planned ${got}`)
})
