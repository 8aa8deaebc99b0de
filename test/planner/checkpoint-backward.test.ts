// The recomputed block's backward under gradient checkpointing (docs/accuracy.md, "Checkpointed block backward"): the
// MLP's and attention's working sets are alive one after the other, never together, and with an fp32 stream the first
// norm's saved input is the checkpoint the held term already counts. Without checkpointing the terms are unchanged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { activationTerms, layerActivations, type ActivationOptions } from '../../src/planner/activations.ts'
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

test('checkpointed QLoRA (fp32 stream): block less the shared norm input, plus the larger phase, plus one dequantized weight', () => {
  const layer = layerActivations(shape, match, qlora)
  for (const seq of [512, 2048, 16384]) {
    const t = seq
    const block = t * layer.bytesPerToken + t * seq * layer.bytesPerTokenSeq - t * h * 4
    const mlpPhase = t * 3 * I * 4
    const attentionPhase = t * seq * a * 4 - t * 3 * I * 4
    const got = activationTerms(layer, L, 1, seq, true).layerBackwardBytes
    assert.equal(got, block + Math.max(mlpPhase, attentionPhase) + layer.dequantBytes, `seq ${seq}`)
    // Never more than the old sum of both working sets on the whole block.
    assert.ok(got < t * layer.bytesPerToken + t * seq * layer.bytesPerTokenSeq + mlpPhase + t * seq * a * 4 + layer.dequantBytes)
  }
  // Phi-3-mini: attention's phase wins once s·a·4 > 2·3·I·4, i.e. past 6·8,192/32 = 1,536 tokens.
  const at = (seq: number) => activationTerms(layer, L, 1, seq, true).layerBackwardBytes
  const blockOnly = (seq: number) => seq * layer.bytesPerToken + seq * seq * layer.bytesPerTokenSeq - seq * h * 4 + layer.dequantBytes
  assert.equal(at(1024) - blockOnly(1024), 1024 * 3 * I * 4)
  assert.equal(at(4096) - blockOnly(4096), 4096 * 4096 * a * 4 - 4096 * 3 * I * 4)
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
