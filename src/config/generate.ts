/**
 * `headroom init` as a library function: KAITO's qlora template as the starting point, the
 * planner's recommendation for the model and GPU, rendered as a commented ConfigMap.
 */
import type { Hardware, ModelArch } from '../catalog/types.ts'
import { InternalError } from '../errors.ts'
import { recommend } from '../planner/index.ts'
import type { Recommendation, RecommendGoal } from '../planner/types.ts'
import { parseTuningConfig } from './parse.ts'
import { toPlanInput } from './plan-input.ts'
import { renderTuningConfigMap } from './render.ts'
import { QLORA_PARAMS_TEMPLATE } from './templates.ts'
import { trainerAccepts } from './trainer-fields.ts'

/** Share of usable GPU memory the recommendation leaves free for what no model predicts. */
export const INIT_SAFETY_MARGIN = 0.1

const ATTENTION_PROJECTIONS = new Set(['qkv_proj', 'q_proj', 'k_proj', 'v_proj', 'o_proj'])

export type GenerateOptions = {
  model: ModelArch
  hardware: Hardware
  seq?: number
  goal?: RecommendGoal
  name?: string
}

/**
 * A ConfigMap for the model on the GPU, or null when nothing fits.
 * @example (await generateTuningConfigMap({ model, hardware: findHardware('A10') }))?.yaml
 */
export function generateTuningConfigMap(opts: GenerateOptions): { yaml: string; recommendation: Recommendation } | null {
  const template = parseTuningConfig(QLORA_PARAMS_TEMPLATE)
  if (!template.value) throw new InternalError('KAITO qlora template no longer parses')
  const base = toPlanInput(template.value, { model: opts.model, hardware: opts.hardware, seq: opts.seq })
  // The seed's example adapts the attention projections; use the model's real names for them.
  const attention = opts.model.layerLinears.map((m) => m.name).filter((n) => ATTENTION_PROJECTIONS.has(n))
  if (attention.length) base.targets = attention
  // The template's bfloat16 would stop transformers at start-up on a GPU without bf16.
  if (!opts.hardware.gpu.bf16 && base.dtype === 'bf16') base.dtype = 'fp16'
  const goal = opts.goal ?? 'max-context'
  // The file is only useful if the trainer reads every key in it: the chunked loss's key
  // (TrainingArguments.loss_implementation) is offered once the trainer's field list has it.
  const losses = trainerAccepts('TrainingArguments', 'loss_implementation') ? undefined : (['full'] as const)
  const rec = recommend(base, { goal, seq: opts.seq, safetyMargin: INIT_SAFETY_MARGIN, losses })
  if (!rec) return null
  return { yaml: renderTuningConfigMap(rec, { model: opts.model, hardware: opts.hardware, goal, name: opts.name }), recommendation: rec }
}
