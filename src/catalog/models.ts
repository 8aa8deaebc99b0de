/**
 * The model catalog: every family's entries built into ModelArch once, looked up by catalog
 * id, alias or hub id, case-insensitively. Pure; no I/O.
 */
import { ExitError } from '../errors.ts'
import type { CatalogEntry } from './entry.ts'
import { GEMMA2_MODELS } from './families/gemma2.ts'
import { LLAMA_MODELS } from './families/llama.ts'
import { MISTRAL_MODELS } from './families/mistral.ts'
import { PHI3_MODELS } from './families/phi3.ts'
import { QWEN2_MODELS } from './families/qwen2.ts'
import { archFromHfConfig } from './hf-config.ts'
import { didYouMean } from './suggest.ts'
import type { ModelArch } from './types.ts'

export const CATALOG: readonly CatalogEntry[] = [
  ...PHI3_MODELS,
  ...LLAMA_MODELS,
  ...MISTRAL_MODELS,
  ...QWEN2_MODELS,
  ...GEMMA2_MODELS,
]

const ARCHS = new Map<string, ModelArch>()
const BY_NAME = new Map<string, string>()
for (const entry of CATALOG) {
  ARCHS.set(entry.id, Object.freeze({ ...archFromHfConfig(entry.config, entry.id), hfId: entry.hfId }))
  for (const name of [entry.id, entry.hfId, ...(entry.aliases ?? [])]) {
    const key = name.toLowerCase()
    const taken = BY_NAME.get(key)
    // two entries answering to one name would make lookups depend on list order
    if (taken && taken !== entry.id) throw new Error(`catalog name "${name}" is used by ${taken} and ${entry.id}`)
    BY_NAME.set(key, entry.id)
  }
}

/** Every spelling the catalog answers to, paired with the catalog id it stands for. */
export function catalogNames(): [string, string][] {
  return [...BY_NAME.entries()]
}

/**
 * The catalog model with this id, alias or hub id (any case), or undefined.
 * @example findModelSync('microsoft/Phi-3-mini-128k-instruct')?.params // 3821079552
 */
export function findModelSync(id: string): ModelArch | undefined {
  const key = BY_NAME.get(id.trim().toLowerCase())
  return key ? ARCHS.get(key) : undefined
}

/** Every catalog model, in catalog order (KAITO's tuning presets first). */
export function listModels(): ModelArch[] {
  return [...ARCHS.values()]
}

/** The error for a name that is neither in the catalog nor anything else Headroom can load. */
export function unknownModelError(ref: string): ExitError {
  return new ExitError(
    `unknown model "${ref}"${didYouMean(ref, catalogNames())}`,
    // The edge adds where the list is (`headroom plan --list-models`, GET /v1/models) by code.
    { path: 'model', code: 'unknown_model' },
  )
}
