/**
 * What bench/memory_step.py measures (one real training step of a Phi-3-mini-shaped model with
 * `layers` blocks at real widths) and the planner's prediction for the same step, shared by
 * bench/qlora-cpu-measure.ts and bench/lora-dropout-cpu.ts.
 */
import { archFromHfConfig } from '../src/catalog/index.ts'
import { memoryTerms } from '../src/planner/peak.ts'
import type { PlanInput } from '../src/planner/types.ts'

/** One measured step, as memory_step.py prints it (one JSON line per configuration). */
export type MeasuredStep = {
  method: 'lora' | 'qlora'; seq: number; gc: boolean; attention: 'sdpa' | 'eager'; dropout?: number; batch: number; layers: number
  state: string; peakAllocatedBytes?: number; breakdown?: Record<string, number>; seconds: number
}

export function parseStepLines<T extends MeasuredStep>(text: string): T[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T)
}

/** Phi-3-mini-128k's config.json with `layers` blocks: the shape memory_step.py builds. */
export function phi3Blocks(layers: number) {
  return archFromHfConfig(
    { model_type: 'phi3', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: layers, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32064, max_position_embeddings: 131072, tie_word_embeddings: false },
    `phi-3-mini-128k (${layers} block${layers > 1 ? 's' : ''})`,
  )
}

/** The planner's terms for the step memory_step.py ran: bf16, r 8, all-linear, AdamW, on CPU. */
export function planStep(m: MeasuredStep) {
  const input: PlanInput = {
    model: phi3Blocks(m.layers), phase: 'train', method: m.method, dtype: 'bf16', quant: m.method === 'qlora' ? 'nf4' : 'none', doubleQuant: m.method === 'qlora',
    rank: 8, alpha: 8, loraDropout: m.dropout ?? 0, targets: 'all-linear', batch: m.batch, seq: m.seq, gradientCheckpointing: m.gc, attention: m.attention,
    optimizer: 'adamw', gpu: null, gpus: 1, parallelism: 'ddp', device: 'cpu', expandableSegments: false,
  }
  return memoryTerms(input)
}
