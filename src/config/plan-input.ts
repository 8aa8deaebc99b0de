/**
 * `toPlanInput`: the config module's long-standing entry point for plan --config, check and
 * init, kept with its signature as a thin wrapper over the codec (codec.ts decode), which
 * holds every mapping rule and default.
 */
import type { Hardware, ModelArch } from '../catalog/types.ts'
import type { PlanInput } from '../planner/types.ts'
import { decode, type DecodeContext } from './codec.ts'
import type { Target } from './rules.ts'
import type { TrainingConfig } from './schema.ts'

export { RUNTIME_DEFAULTS } from './codec.ts'

export type PlanRequestOptions = {
  model: ModelArch
  /** The GPU(s): a Hardware from findHardware, or null to plan without a GPU. */
  hardware?: Hardware | null
  /** Overrides max_length (headroom check --seq). */
  seq?: number
  /** cluster: KAITO's tuning pod runs it (its defaults; DEFAULT_TARGET_MODULES for phi-3 presets). */
  target?: Target
  presetName?: string
  /** Where it runs; default cuda. */
  device?: 'cpu' | 'cuda'
  /** Native bf16 on this CPU (runtime/capability.ts); required with device cpu. */
  cpuBf16?: boolean
  method?: DecodeContext['method']
  env?: DecodeContext['env']
}

/**
 * The planner's input for a training_config on a model and GPU: decode with a cuda device by default.
 * @example toPlanInput(parsed.value, { model: await loadModel('phi-3-mini-128k-instruct'), hardware: findHardware('A100-80GB') })
 */
export function toPlanInput(config: TrainingConfig | Record<string, unknown>, opts: PlanRequestOptions): PlanInput {
  return decode(config, { ...opts, device: opts.device ?? 'cuda' })
}
