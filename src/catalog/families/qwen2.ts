/**
 * Qwen2.5 and Qwen2.5-Coder (Hugging Face model_type `qwen2`): bias on q/k/v. Every number is
 * copied from the checkpoint's config.json on the hub
 * (https://huggingface.co/<hfId>/blob/main/config.json); counts are elements, lengths tokens.
 * Their configs carry sliding_window but set use_sliding_window: false, so no window applies.
 * Instruct checkpoints of 7B and up ship max_position_embeddings 32768 (YaRN extends it at
 * inference); the base checkpoints ship 131072.
 */
import type { CatalogEntry } from '../entry.ts'
import type { HfConfig } from '../hf-config.ts'

// Qwen/Qwen2.5-0.5B config.json (tied embeddings)
const QWEN25_05B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 896, // elements
  intermediate_size: 4864, // elements
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  vocab_size: 151936, // tokens
  max_position_embeddings: 32768, // tokens
  tie_word_embeddings: true,
  use_sliding_window: false,
}

// Qwen/Qwen2.5-1.5B config.json (tied embeddings)
const QWEN25_15B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 1536, // elements
  intermediate_size: 8960, // elements
  num_hidden_layers: 28,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  vocab_size: 151936, // tokens
  max_position_embeddings: 32768, // tokens
  tie_word_embeddings: true,
  use_sliding_window: false,
}

// Qwen/Qwen2.5-3B config.json (tied embeddings)
const QWEN25_3B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 2048, // elements
  intermediate_size: 11008, // elements
  num_hidden_layers: 36,
  num_attention_heads: 16,
  num_key_value_heads: 2,
  vocab_size: 151936, // tokens
  max_position_embeddings: 32768, // tokens
  tie_word_embeddings: true,
  use_sliding_window: false,
}

// Qwen/Qwen2.5-7B config.json
const QWEN25_7B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 3584, // elements
  intermediate_size: 18944, // elements
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  vocab_size: 152064, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: false,
  use_sliding_window: false,
}

// Qwen/Qwen2.5-14B config.json
const QWEN25_14B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 5120, // elements
  intermediate_size: 13824, // elements
  num_hidden_layers: 48,
  num_attention_heads: 40,
  num_key_value_heads: 8,
  vocab_size: 152064, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: false,
  use_sliding_window: false,
}

// Qwen/Qwen2.5-32B config.json
const QWEN25_32B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 5120, // elements
  intermediate_size: 27648, // elements
  num_hidden_layers: 64,
  num_attention_heads: 40,
  num_key_value_heads: 8,
  vocab_size: 152064, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: false,
  use_sliding_window: false,
}

// Qwen/Qwen2.5-72B config.json
const QWEN25_72B: HfConfig = {
  model_type: 'qwen2',
  hidden_size: 8192, // elements
  intermediate_size: 29568, // elements
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  vocab_size: 152064, // tokens
  max_position_embeddings: 131072, // tokens
  tie_word_embeddings: false,
  use_sliding_window: false,
}

const INSTRUCT_CONTEXT = 32768 // tokens: max_position_embeddings of the 7B+ Instruct config.json files

export const QWEN2_MODELS: CatalogEntry[] = [
  { id: 'qwen2.5-0.5b', hfId: 'Qwen/Qwen2.5-0.5B', config: QWEN25_05B },
  { id: 'qwen2.5-0.5b-instruct', hfId: 'Qwen/Qwen2.5-0.5B-Instruct', config: QWEN25_05B },
  { id: 'qwen2.5-1.5b', hfId: 'Qwen/Qwen2.5-1.5B', config: QWEN25_15B },
  { id: 'qwen2.5-1.5b-instruct', hfId: 'Qwen/Qwen2.5-1.5B-Instruct', config: QWEN25_15B },
  { id: 'qwen2.5-3b', hfId: 'Qwen/Qwen2.5-3B', config: QWEN25_3B },
  { id: 'qwen2.5-3b-instruct', hfId: 'Qwen/Qwen2.5-3B-Instruct', config: QWEN25_3B },
  { id: 'qwen2.5-7b', hfId: 'Qwen/Qwen2.5-7B', config: QWEN25_7B },
  { id: 'qwen2.5-7b-instruct', hfId: 'Qwen/Qwen2.5-7B-Instruct', config: { ...QWEN25_7B, max_position_embeddings: INSTRUCT_CONTEXT } },
  { id: 'qwen2.5-14b', hfId: 'Qwen/Qwen2.5-14B', config: QWEN25_14B },
  { id: 'qwen2.5-14b-instruct', hfId: 'Qwen/Qwen2.5-14B-Instruct', config: { ...QWEN25_14B, max_position_embeddings: INSTRUCT_CONTEXT } },
  { id: 'qwen2.5-32b', hfId: 'Qwen/Qwen2.5-32B', config: QWEN25_32B },
  { id: 'qwen2.5-32b-instruct', hfId: 'Qwen/Qwen2.5-32B-Instruct', config: { ...QWEN25_32B, max_position_embeddings: INSTRUCT_CONTEXT } },
  { id: 'qwen2.5-72b', hfId: 'Qwen/Qwen2.5-72B', config: QWEN25_72B },
  { id: 'qwen2.5-72b-instruct', hfId: 'Qwen/Qwen2.5-72B-Instruct', config: { ...QWEN25_72B, max_position_embeddings: INSTRUCT_CONTEXT } },
  // KAITO tuning presets. Qwen/Qwen2.5-Coder-{7B,32B}-Instruct config.json: the 7B/32B shapes above.
  { id: 'qwen2.5-coder-7b-instruct', hfId: 'Qwen/Qwen2.5-Coder-7B-Instruct', config: { ...QWEN25_7B, max_position_embeddings: INSTRUCT_CONTEXT } },
  { id: 'qwen2.5-coder-32b-instruct', hfId: 'Qwen/Qwen2.5-Coder-32B-Instruct', config: { ...QWEN25_32B, max_position_embeddings: INSTRUCT_CONTEXT } },
]
