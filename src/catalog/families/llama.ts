/**
 * Llama 2, Llama 3, 3.1, 3.2 and 3.3 (Hugging Face model_type `llama`). Every number is
 * copied from the checkpoint's config.json on the hub
 * (https://huggingface.co/<hfId>/blob/main/config.json); counts are elements, lengths tokens.
 */
import type { CatalogEntry } from '../entry.ts'
import type { HfConfig } from '../hf-config.ts'

// meta-llama/Llama-2-7b-hf config.json
const LLAMA2_7B: HfConfig = {
  model_type: 'llama',
  hidden_size: 4096, // elements
  intermediate_size: 11008, // elements
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32000, // tokens
  max_position_embeddings: 4096, // tokens
  tie_word_embeddings: false,
  attention_bias: false,
}

// meta-llama/Llama-2-13b-hf config.json
const LLAMA2_13B: HfConfig = {
  model_type: 'llama',
  hidden_size: 5120, // elements
  intermediate_size: 13824, // elements
  num_hidden_layers: 40,
  num_attention_heads: 40,
  num_key_value_heads: 40,
  vocab_size: 32000, // tokens
  max_position_embeddings: 4096, // tokens
  tie_word_embeddings: false,
  attention_bias: false,
}

// meta-llama/Llama-2-70b-hf config.json (grouped-query attention, 8 KV heads)
const LLAMA2_70B: HfConfig = {
  model_type: 'llama',
  hidden_size: 8192, // elements
  intermediate_size: 28672, // elements
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  vocab_size: 32000, // tokens
  max_position_embeddings: 4096, // tokens
  tie_word_embeddings: false,
  attention_bias: false,
}

// meta-llama/Meta-Llama-3-8B config.json
const LLAMA3_8B: HfConfig = {
  model_type: 'llama',
  hidden_size: 4096, // elements
  intermediate_size: 14336, // elements
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 128256, // tokens
  max_position_embeddings: 8192, // tokens
  tie_word_embeddings: false,
  attention_bias: false,
  mlp_bias: false,
}

// meta-llama/Llama-3.1-8B config.json (rope_type llama3 stretches 8k to 128k; shapes unchanged)
const LLAMA31_8B: HfConfig = { ...LLAMA3_8B, max_position_embeddings: 131072 /* tokens */ }

// meta-llama/Llama-3.1-70B config.json; Llama-3.3-70B-Instruct has the same numbers
const LLAMA31_70B: HfConfig = {
  model_type: 'llama',
  hidden_size: 8192, // elements
  intermediate_size: 28672, // elements
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  vocab_size: 128256, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: false,
  attention_bias: false,
  mlp_bias: false,
}

// meta-llama/Llama-3.2-1B config.json (tied embeddings, head_dim 64)
const LLAMA32_1B: HfConfig = {
  model_type: 'llama',
  hidden_size: 2048, // elements
  intermediate_size: 8192, // elements
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64, // elements
  vocab_size: 128256, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
}

// meta-llama/Llama-3.2-3B config.json (tied embeddings, head_dim 128)
const LLAMA32_3B: HfConfig = {
  model_type: 'llama',
  hidden_size: 3072, // elements
  intermediate_size: 8192, // elements
  num_hidden_layers: 28,
  num_attention_heads: 24,
  num_key_value_heads: 8,
  head_dim: 128, // elements
  vocab_size: 128256, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
}

export const LLAMA_MODELS: CatalogEntry[] = [
  { id: 'llama-2-7b', hfId: 'meta-llama/Llama-2-7b-hf', aliases: ['llama2-7b'], config: LLAMA2_7B },
  { id: 'llama-2-7b-chat', hfId: 'meta-llama/Llama-2-7b-chat-hf', aliases: ['llama2-7b-chat'], config: LLAMA2_7B },
  { id: 'llama-2-13b', hfId: 'meta-llama/Llama-2-13b-hf', aliases: ['llama2-13b'], config: LLAMA2_13B },
  { id: 'llama-2-13b-chat', hfId: 'meta-llama/Llama-2-13b-chat-hf', aliases: ['llama2-13b-chat'], config: LLAMA2_13B },
  { id: 'llama-2-70b', hfId: 'meta-llama/Llama-2-70b-hf', aliases: ['llama2-70b'], config: LLAMA2_70B },
  { id: 'llama-2-70b-chat', hfId: 'meta-llama/Llama-2-70b-chat-hf', aliases: ['llama2-70b-chat'], config: LLAMA2_70B },
  { id: 'llama-3-8b', hfId: 'meta-llama/Meta-Llama-3-8B', aliases: ['llama3-8b'], config: LLAMA3_8B },
  { id: 'llama-3-8b-instruct', hfId: 'meta-llama/Meta-Llama-3-8B-Instruct', aliases: ['llama3-8b-instruct'], config: LLAMA3_8B },
  { id: 'llama-3.1-8b', hfId: 'meta-llama/Llama-3.1-8B', aliases: ['llama3.1-8b', 'meta-llama/Meta-Llama-3.1-8B'], config: LLAMA31_8B },
  { id: 'llama-3.1-8b-instruct', hfId: 'meta-llama/Llama-3.1-8B-Instruct', aliases: ['llama3.1-8b-instruct', 'meta-llama/Meta-Llama-3.1-8B-Instruct'], config: LLAMA31_8B },
  { id: 'llama-3.1-70b', hfId: 'meta-llama/Llama-3.1-70B', aliases: ['llama3.1-70b', 'meta-llama/Meta-Llama-3.1-70B'], config: LLAMA31_70B },
  { id: 'llama-3.1-70b-instruct', hfId: 'meta-llama/Llama-3.1-70B-Instruct', aliases: ['llama3.1-70b-instruct', 'meta-llama/Meta-Llama-3.1-70B-Instruct'], config: LLAMA31_70B },
  { id: 'llama-3.3-70b-instruct', hfId: 'meta-llama/Llama-3.3-70B-Instruct', aliases: ['llama-3.3-70b', 'llama3.3-70b'], config: LLAMA31_70B },
  { id: 'llama-3.2-1b', hfId: 'meta-llama/Llama-3.2-1B', aliases: ['llama3.2-1b'], config: LLAMA32_1B },
  { id: 'llama-3.2-1b-instruct', hfId: 'meta-llama/Llama-3.2-1B-Instruct', aliases: ['llama3.2-1b-instruct'], config: LLAMA32_1B },
  { id: 'llama-3.2-3b', hfId: 'meta-llama/Llama-3.2-3B', aliases: ['llama3.2-3b'], config: LLAMA32_3B },
  { id: 'llama-3.2-3b-instruct', hfId: 'meta-llama/Llama-3.2-3B-Instruct', aliases: ['llama3.2-3b-instruct'], config: LLAMA32_3B },
]
