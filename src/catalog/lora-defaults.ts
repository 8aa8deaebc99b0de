/**
 * Which modules get a LoRA adapter when a config names no target_modules. Headroom's trainer
 * (python/headroom_runtime/_model.py) follows KAITO, so the planner, the checker and the
 * supervisor's prediction all use this one rule.
 */
import type { ModelArch, ModelType } from './types.ts'

/**
 * KAITO's DEFAULT_TARGET_MODULES for Phi-3 presets (pkg/workspace/tuning/preset_tuning.go).
 * On Hugging Face's Phi-3 (fused qkv_proj and gate_up_proj) only o_proj and down_proj match.
 */
export const KAITO_PHI3_TARGETS: readonly string[] = ['k_proj', 'q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj']

/** peft's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the types the catalog knows. */
export const PEFT_DEFAULT_TARGETS: Readonly<Record<ModelType, readonly string[]>> = {
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  gemma2: ['q_proj', 'v_proj'],
  phi3: ['qkv_proj'],
}

/** The target modules the trainer uses when none are configured, e.g. `['q_proj', 'v_proj']` for Llama. */
export function defaultLoraTargets(model: Pick<ModelArch, 'modelType'>): string[] {
  if (model.modelType === 'phi3') return [...KAITO_PHI3_TARGETS]
  return [...(PEFT_DEFAULT_TARGETS[model.modelType] ?? ['q_proj', 'v_proj'])]
}
