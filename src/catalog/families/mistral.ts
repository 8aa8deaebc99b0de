/**
 * Mistral 7B (Hugging Face model_type `mistral`). Every number is copied from the
 * checkpoint's config.json on the hub (https://huggingface.co/<hfId>/blob/main/config.json);
 * counts are elements, lengths tokens.
 */
import type { CatalogEntry } from '../entry.ts'
import type { HfConfig } from '../hf-config.ts'

// mistralai/Mistral-7B-v0.1 config.json (4096-token sliding-window attention)
const MISTRAL_7B_V01: HfConfig = {
  model_type: 'mistral',
  hidden_size: 4096, // elements
  intermediate_size: 14336, // elements
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 32000, // tokens
  max_position_embeddings: 32768, // tokens
  sliding_window: 4096, // tokens
  tie_word_embeddings: false,
}

// mistralai/Mistral-7B-v0.3 config.json: vocabulary grown to 32768, sliding window dropped (null)
const MISTRAL_7B_V03: HfConfig = {
  model_type: 'mistral',
  hidden_size: 4096, // elements
  intermediate_size: 14336, // elements
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 32768, // tokens
  max_position_embeddings: 32768, // tokens
  sliding_window: null,
  tie_word_embeddings: false,
}

export const MISTRAL_MODELS: CatalogEntry[] = [
  { id: 'mistral-7b-v0.1', hfId: 'mistralai/Mistral-7B-v0.1', aliases: ['mistral-7b-v01'], config: MISTRAL_7B_V01 },
  // KAITO's tuning preset is `mistral-7b`, resolved to the v0.3 repository.
  { id: 'mistral-7b-v0.3', hfId: 'mistralai/Mistral-7B-v0.3', aliases: ['mistral-7b', 'mistral-7b-v03'], config: MISTRAL_7B_V03 },
  { id: 'mistral-7b-instruct-v0.3', hfId: 'mistralai/Mistral-7B-Instruct-v0.3', aliases: ['mistral-7b-instruct'], config: MISTRAL_7B_V03 },
]
