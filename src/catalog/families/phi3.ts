/**
 * Phi-3, Phi-3.5 and Phi-4 (Hugging Face model_type `phi3`): fused `qkv_proj` and
 * `gate_up_proj`. Every number is copied from the checkpoint's config.json on the hub
 * (https://huggingface.co/<hfId>/blob/main/config.json); counts are elements, lengths tokens.
 */
import type { CatalogEntry } from '../entry.ts'
import type { HfConfig } from '../hf-config.ts'

// microsoft/Phi-3-mini-4k-instruct config.json
const PHI3_MINI_4K: HfConfig = {
  model_type: 'phi3',
  hidden_size: 3072, // elements
  intermediate_size: 8192, // elements
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32064, // tokens
  max_position_embeddings: 4096, // tokens
  sliding_window: 2047, // tokens
  tie_word_embeddings: false,
}

// microsoft/Phi-3-mini-128k-instruct config.json (LongRoPE; same weights' shapes as 4k)
const PHI3_MINI_128K: HfConfig = {
  ...PHI3_MINI_4K,
  max_position_embeddings: 131072, // tokens
  sliding_window: 262144, // tokens
}

// microsoft/Phi-3-medium-4k-instruct config.json
const PHI3_MEDIUM_4K: HfConfig = {
  model_type: 'phi3',
  hidden_size: 5120, // elements
  intermediate_size: 17920, // elements
  num_hidden_layers: 40,
  num_attention_heads: 40,
  num_key_value_heads: 10,
  vocab_size: 32064, // tokens
  max_position_embeddings: 4096, // tokens
  sliding_window: 2047, // tokens
  tie_word_embeddings: false,
}

// microsoft/Phi-3-medium-128k-instruct config.json
const PHI3_MEDIUM_128K: HfConfig = {
  ...PHI3_MEDIUM_4K,
  max_position_embeddings: 131072, // tokens
  sliding_window: 131072, // tokens
}

// microsoft/Phi-3.5-mini-instruct config.json
const PHI35_MINI: HfConfig = {
  ...PHI3_MINI_4K,
  max_position_embeddings: 131072, // tokens
  sliding_window: 262144, // tokens
}

// microsoft/phi-4 config.json (sliding_window: null)
const PHI4: HfConfig = {
  model_type: 'phi3',
  hidden_size: 5120, // elements
  intermediate_size: 17920, // elements
  num_hidden_layers: 40,
  num_attention_heads: 40,
  num_key_value_heads: 10,
  vocab_size: 100352, // tokens
  max_position_embeddings: 16384, // tokens
  tie_word_embeddings: false,
}

// microsoft/Phi-4-mini-instruct config.json (partial_rotary_factor 0.75; tied embeddings)
const PHI4_MINI: HfConfig = {
  model_type: 'phi3',
  hidden_size: 3072, // elements
  intermediate_size: 8192, // elements
  num_hidden_layers: 32,
  num_attention_heads: 24,
  num_key_value_heads: 8,
  vocab_size: 200064, // tokens
  max_position_embeddings: 131072, // tokens
  sliding_window: 262144, // tokens
  tie_word_embeddings: true,
}

export const PHI3_MODELS: CatalogEntry[] = [
  { id: 'phi-3-mini-4k-instruct', hfId: 'microsoft/Phi-3-mini-4k-instruct', aliases: ['phi3-mini-4k', 'phi-3-mini-4k'], config: PHI3_MINI_4K },
  { id: 'phi-3-mini-128k-instruct', hfId: 'microsoft/Phi-3-mini-128k-instruct', aliases: ['phi3-mini-128k', 'phi-3-mini-128k'], config: PHI3_MINI_128K },
  { id: 'phi-3-medium-4k-instruct', hfId: 'microsoft/Phi-3-medium-4k-instruct', aliases: ['phi3-medium-4k', 'phi-3-medium-4k'], config: PHI3_MEDIUM_4K },
  { id: 'phi-3-medium-128k-instruct', hfId: 'microsoft/Phi-3-medium-128k-instruct', aliases: ['phi3-medium-128k', 'phi-3-medium-128k'], config: PHI3_MEDIUM_128K },
  { id: 'phi-3.5-mini-instruct', hfId: 'microsoft/Phi-3.5-mini-instruct', aliases: ['phi-3.5-mini', 'phi3.5-mini'], config: PHI35_MINI },
  { id: 'phi-4', hfId: 'microsoft/phi-4', aliases: ['phi4'], config: PHI4 },
  { id: 'phi-4-mini-instruct', hfId: 'microsoft/Phi-4-mini-instruct', aliases: ['phi-4-mini', 'phi4-mini'], config: PHI4_MINI },
]
