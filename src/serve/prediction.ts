/**
 * The planner's prediction of the worker's memory, for `headroom_inference_memory_predicted_bytes`:
 * the inference peak (weights + KV cache + the largest prefill + logits; docs/memory-model.md)
 * of the most the worker decodes at once, `maxBatch` sequences, each at the model's longest
 * position. Needs the planner's inference phase; without it, or for a model the catalog cannot
 * describe, it says why and the gauge stays unexported (never a made-up number).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

export type ServingPrediction = { bytes: number; batch: number; seq: number } | { unavailable: string }

const DTYPES: Record<string, 'fp32' | 'bf16' | 'fp16'> = { float32: 'fp32', bfloat16: 'bf16', float16: 'fp16' }

/**
 * @example await predictServingBytes({ model: 'default', assetsDir: '.headroom/assets', device: 'cpu', dtype: 'float32', batch: 16, adapters: 1 })
 */
export async function predictServingBytes(opts: {
  model: string
  /** Where the embedded models live (`default`, `tiny-phi3`, `tiny-llama` resolve there). */
  assetsDir: string
  device: string
  dtype?: string
  batch: number
  adapters: number
}): Promise<ServingPrediction> {
  const { PHASES } = await import('../planner/fields.ts')
  if (!(PHASES as readonly string[]).includes('inference')) return { unavailable: "this planner has no inference phase (headroom plan --phase inference)" }
  const embedded = opts.model === 'default' ? 'tiny-phi3' : opts.model
  const model = existsSync(join(opts.assetsDir, embedded, 'config.json')) ? join(opts.assetsDir, embedded) : opts.model
  try {
    const { loadModel } = await import('../catalog/index.ts')
    const arch = await loadModel(model)
    const { planFromRequest } = await import('../request/index.ts')
    const seq = arch.maxPositionEmbeddings
    const plan = await planFromRequest({
      model,
      phase: 'inference',
      // Served adapters add their own matmul outputs; a bare base is the full model's weights.
      method: opts.adapters > 0 ? 'lora' : 'full',
      quant: 'none',
      ...(opts.dtype && DTYPES[opts.dtype] ? { dtype: DTYPES[opts.dtype] } : {}),
      batch: opts.batch,
      seq,
      device: opts.device.startsWith('cuda') ? 'cuda' : 'cpu',
    })
    return { bytes: plan.peakAllocatedBytes, batch: opts.batch, seq }
  } catch (err) {
    return { unavailable: `the planner cannot describe ${model}: ${err instanceof Error ? err.message : String(err)}` }
  }
}
