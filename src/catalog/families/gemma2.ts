/**
 * Gemma 2 (Hugging Face model_type `gemma2`): head_dim 256 independent of hidden_size, four
 * RMSNorms per block, tied embeddings, sliding-window attention on alternate layers. Every
 * number is copied from the checkpoint's config.json on the hub
 * (https://huggingface.co/<hfId>/blob/main/config.json); counts are elements, lengths tokens.
 */
import type { CatalogEntry } from '../entry.ts'
import type { HfConfig } from '../hf-config.ts'

// google/gemma-2-2b config.json
const GEMMA2_2B: HfConfig = {
  model_type: 'gemma2',
  hidden_size: 2304, // elements
  intermediate_size: 9216, // elements
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256, // elements
  vocab_size: 256000, // tokens
  max_position_embeddings: 8192, // tokens
  sliding_window: 4096, // tokens
  tie_word_embeddings: true,
  attention_bias: false,
}

// google/gemma-2-9b config.json
const GEMMA2_9B: HfConfig = {
  model_type: 'gemma2',
  hidden_size: 3584, // elements
  intermediate_size: 14336, // elements
  num_hidden_layers: 42,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 256, // elements
  vocab_size: 256000, // tokens
  max_position_embeddings: 8192, // tokens
  sliding_window: 4096, // tokens
  tie_word_embeddings: true,
  attention_bias: false,
}

export const GEMMA2_MODELS: CatalogEntry[] = [
  { id: 'gemma-2-2b', hfId: 'google/gemma-2-2b', aliases: ['gemma2-2b'], config: GEMMA2_2B },
  { id: 'gemma-2-2b-it', hfId: 'google/gemma-2-2b-it', aliases: ['gemma2-2b-it'], config: GEMMA2_2B },
  { id: 'gemma-2-9b', hfId: 'google/gemma-2-9b', aliases: ['gemma2-9b'], config: GEMMA2_9B },
  { id: 'gemma-2-9b-it', hfId: 'google/gemma-2-9b-it', aliases: ['gemma2-9b-it'], config: GEMMA2_9B },
]
