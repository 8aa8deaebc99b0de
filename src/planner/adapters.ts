/**
 * LoRA adapters: A (r x in) and B (out x r) per matched Linear per decoder block.
 */
import type { ModelShape } from './shape.ts'
import type { TargetMatch } from './targets.ts'

// peft get_peft_model(autocast_adapter_dtype=True) casts fp16/bf16 adapter weights to float32.
export const ADAPTER_BYTES_PER_PARAM = 4

/**
 * Trainable LoRA scalars: r x (in + out) for each matched Linear in every block, plus lm_head
 * when named (peft LoraLayer.update_layer creates lora_A: in -> r and lora_B: r -> out).
 * @example loraParams(shape, matchTargets(shape, ['o_proj']), 8) // 1,572,864 on Phi-3-mini
 */
export function loraParams(shape: ModelShape, match: TargetMatch, rank: number): number {
  let perLayer = 0
  for (const m of match.modules) perLayer += rank * (m.inFeatures + m.outFeatures)
  const arch = shape.arch
  const head = match.lmHead ? rank * (arch.hiddenSize + arch.vocabSize) : 0
  return perLayer * arch.numLayers + head
}
