/** One catalog model: the literal config.json numbers of a published checkpoint and its names. */
import type { HfConfig } from './hf-config.ts'

export type CatalogEntry = {
  /** Lower-case catalog id, KAITO's preset name where KAITO has one, e.g. `phi-3-mini-128k-instruct`. */
  id: string
  /** Hugging Face hub id with the hub's capitalisation, e.g. `microsoft/Phi-3-mini-128k-instruct`. */
  hfId: string
  /** Other names accepted for this model, e.g. `phi3-mini`. */
  aliases?: string[]
  /** The fields of the checkpoint's config.json that shape its parameters and memory. */
  config: HfConfig
}
