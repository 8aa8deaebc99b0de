/**
 * The models KAITO can tune, by the preset name a Workspace's tuning.preset.name takes.
 * Source: kaito-project/kaito presets/workspace/models/transformer_runtime_tuning_parameters.go
 * at HEAD 056b8280b1a8 (../shared/kaito-data/tuning/tuning_presets_HEAD.csv): only these
 * presets carry tuning parameters; the webhook refuses tuning any other name.
 */
import type { ModelArch } from '../catalog/types.ts'
import { ExitError } from '../errors.ts'

/** KAITO tuning preset names, in KAITO's order. Each is also a Headroom catalog id. */
export const KAITO_TUNING_PRESETS = [
  'phi-4',
  'phi-4-mini-instruct',
  'phi-3-mini-4k-instruct',
  'phi-3-mini-128k-instruct',
  'phi-3-medium-4k-instruct',
  'phi-3-medium-128k-instruct',
  'phi-3.5-mini-instruct',
  'mistral-7b-v0.3',
  'qwen2.5-coder-7b-instruct',
  'qwen2.5-coder-32b-instruct',
] as const

export type KaitoTuningPreset = (typeof KAITO_TUNING_PRESETS)[number]

/**
 * The preset KAITO tunes this model as, by catalog id or hub id (case-insensitive); a usage
 * error listing KAITO's presets otherwise.
 * @example kaitoPreset(findModelSync('microsoft/Phi-3-mini-128k-instruct')!) // 'phi-3-mini-128k-instruct'
 */
export function kaitoPreset(model: ModelArch): KaitoTuningPreset {
  const names = [model.name, model.hfId?.split('/').pop()].filter((n): n is string => !!n).map((n) => n.toLowerCase())
  const hit = KAITO_TUNING_PRESETS.find((p) => names.includes(p))
  if (hit) return hit
  throw new ExitError(
    `--model ${model.name} is not a model KAITO can tune: KAITO's tuning presets are ${KAITO_TUNING_PRESETS.join(', ')}; pick one of them, or use --target job to run Headroom's own runtime`,
    { path: 'model', code: 'kaito_unsupported_model' },
  )
}
