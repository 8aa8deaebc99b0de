/** The module names peft's target_modules can match in a model. */
import type { ModelArch } from './types.ts'

/**
 * Unique Linear leaf names of a model, in forward order, ending with `lm_head` (present even
 * when tied to the embedding, so peft can still target it).
 * @example linearModuleNames(phi3) // ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'lm_head']
 */
export function linearModuleNames(arch: ModelArch): string[] {
  return [...new Set([...arch.layerLinears.map((m) => m.name), 'lm_head'])]
}
