/**
 * Turns a Hugging Face `config.json` object into a ModelArch: the real Linear module names
 * and shapes of one decoder block, and an exact parameter count. Pure; no I/O.
 */
import { ExitError } from '../errors.ts'
import type { LinearModule, ModelArch, ModelType } from './types.ts'

/** The config.json fields Headroom reads, spelled as Hugging Face spells them. */
export type HfConfig = {
  model_type: ModelType
  hidden_size: number
  intermediate_size: number
  num_hidden_layers: number
  num_attention_heads: number
  num_key_value_heads?: number
  head_dim?: number | null
  vocab_size: number
  max_position_embeddings?: number
  tie_word_embeddings?: boolean
  attention_bias?: boolean
  mlp_bias?: boolean
  sliding_window?: number | null
  /** Qwen2 only: the window applies only when this is true. */
  use_sliding_window?: boolean
  _name_or_path?: string
}

export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ['llama', 'mistral', 'phi3', 'qwen2', 'gemma2']

const REQUIRED_FIELDS = [
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'vocab_size',
] as const

/**
 * The largest value of each size field that Headroom plans, about 8x the largest published
 * model's (hidden_size 16,384 and 126 layers in Llama-3.1-405B's config.json; vocab 262,144 in
 * Gemma 3; 10,485,760 positions in Llama 4 Scout). Beyond these a config.json is a typo or a
 * hostile input, and planning it would print Infinity GiB; in units of one (elements, layers,
 * heads, tokens).
 */
export const MAX_CONFIG_FIELD: Record<(typeof REQUIRED_FIELDS)[number] | 'num_key_value_heads' | 'head_dim' | 'max_position_embeddings' | 'sliding_window', number> = {
  hidden_size: 131_072,
  intermediate_size: 1_048_576,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 16_384,
  vocab_size: 4_194_304,
  max_position_embeddings: 134_217_728,
  sliding_window: 134_217_728,
}

/** 100 trillion parameters: 50x the largest published dense models; keeps every byte count finite and exact in a double. */
export const MAX_MODEL_PARAMS = 1e14

/**
 * What transformers' config classes assume when config.json leaves a field out
 * (transformers 5.x, models/<type>/configuration_<type>.py).
 */
const DEFAULTS: Record<ModelType, { maxPositionEmbeddings: number; tieWordEmbeddings: boolean }> = {
  llama: { maxPositionEmbeddings: 2048, tieWordEmbeddings: false },
  mistral: { maxPositionEmbeddings: 131072, tieWordEmbeddings: false },
  phi3: { maxPositionEmbeddings: 4096, tieWordEmbeddings: false },
  qwen2: { maxPositionEmbeddings: 32768, tieWordEmbeddings: false },
  gemma2: { maxPositionEmbeddings: 8192, tieWordEmbeddings: true },
}

/** RMSNorm weights per decoder block: gemma2 adds pre/post feed-forward norms to the usual two. */
const NORMS_PER_LAYER: Record<ModelType, number> = { llama: 2, mistral: 2, phi3: 2, qwen2: 2, gemma2: 4 }

/**
 * Builds the architecture a config.json describes, naming modules as peft sees them.
 * Throws ExitError (one line) for an unsupported model_type or missing/invalid fields.
 * @example archFromHfConfig(JSON.parse(fs.readFileSync('config.json', 'utf8')), 'my-model').params
 */
export function archFromHfConfig(config: unknown, name: string): ModelArch {
  const c = validate(config, name)
  const heads = c.num_attention_heads
  const kvHeads = c.num_key_value_heads ?? heads
  const headDim = c.head_dim ?? Math.floor(c.hidden_size / heads)
  const layerLinears = blockLinears(c, heads, kvHeads, headDim)
  const layerNormParams = NORMS_PER_LAYER[c.model_type] * c.hidden_size
  const tie = c.tie_word_embeddings ?? DEFAULTS[c.model_type].tieWordEmbeddings
  const embedParams = c.vocab_size * c.hidden_size
  const lmHeadParams = tie ? 0 : c.vocab_size * c.hidden_size
  const finalNormParams = c.hidden_size
  const perLayer = layerLinears.reduce((n, m) => n + linearParams(m), 0) + layerNormParams
  const arch: ModelArch = {
    name,
    modelType: c.model_type,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    vocabSize: c.vocab_size,
    maxPositionEmbeddings: c.max_position_embeddings ?? DEFAULTS[c.model_type].maxPositionEmbeddings,
    tieWordEmbeddings: tie,
    layerLinears,
    layerNormParams,
    embedParams,
    lmHeadParams,
    finalNormParams,
    params: perLayer * c.num_hidden_layers + embedParams + lmHeadParams + finalNormParams,
  }
  if (!(arch.params <= MAX_MODEL_PARAMS)) {
    throw new ExitError(
      `${name}: config.json describes ${arch.params.toExponential(2)} parameters, over the ${MAX_MODEL_PARAMS.toExponential(0)} limit: check hidden_size=${c.hidden_size}, intermediate_size=${c.intermediate_size}, num_hidden_layers=${c.num_hidden_layers}, vocab_size=${c.vocab_size}`,
    )
  }
  const window = slidingWindow(c)
  if (window !== undefined) arch.slidingWindow = window
  if (c._name_or_path && /^[\w.-]+\/[\w.-]+$/.test(c._name_or_path)) arch.hfId = c._name_or_path
  return arch
}

/** Weight plus bias scalars of one Linear. */
export function linearParams(m: LinearModule): number {
  return m.inFeatures * m.outFeatures + (m.bias ? m.outFeatures : 0)
}

function blockLinears(c: HfConfig, heads: number, kvHeads: number, headDim: number): LinearModule[] {
  const h = c.hidden_size
  const i = c.intermediate_size
  const q = heads * headDim
  const kv = kvHeads * headDim
  const lin = (name: string, inFeatures: number, outFeatures: number, bias = false): LinearModule => ({
    name,
    inFeatures,
    outFeatures,
    bias,
  })
  if (c.model_type === 'phi3') {
    // modeling_phi3.py fuses q/k/v into one Linear and gate/up into another; peft sees only these names.
    return [lin('qkv_proj', h, q + 2 * kv), lin('o_proj', q, h), lin('gate_up_proj', h, 2 * i), lin('down_proj', i, h)]
  }
  // modeling_qwen2.py hard-codes bias=True on q/k/v (not o); llama and gemma2 read attention_bias.
  const qkvBias = c.model_type === 'qwen2' ? true : c.model_type === 'mistral' ? false : (c.attention_bias ?? false)
  const oBias = c.model_type === 'llama' || c.model_type === 'gemma2' ? (c.attention_bias ?? false) : false
  const mlpBias = c.model_type === 'llama' ? (c.mlp_bias ?? false) : false
  return [
    lin('q_proj', h, q, qkvBias),
    lin('k_proj', h, kv, qkvBias),
    lin('v_proj', h, kv, qkvBias),
    lin('o_proj', q, h, oBias),
    lin('gate_proj', h, i, mlpBias),
    lin('up_proj', h, i, mlpBias),
    lin('down_proj', i, h, mlpBias),
  ]
}

function slidingWindow(c: HfConfig): number | undefined {
  if (c.sliding_window == null) return undefined
  // Qwen2 configs carry sliding_window: 131072 but disable it with use_sliding_window: false.
  if (c.model_type === 'qwen2' && !c.use_sliding_window) return undefined
  return c.sliding_window
}

/** A value as JSON, cut short: a config.json may be hostile, and an error must stay one short line. */
function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v)
  return s.length > 40 ? `${s.slice(0, 37)}...` : s
}

function validate(config: unknown, name: string): HfConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ExitError(`${name}: config.json must hold a JSON object, got ${Array.isArray(config) ? 'an array' : config === null ? 'null' : `a ${typeof config}`}`)
  }
  const c = config as Record<string, unknown>
  const type = c.model_type
  if (type === undefined) {
    throw new ExitError(
      `${name}: config.json has no model_type: add one of ${SUPPORTED_MODEL_TYPES.join(', ')}`,
    )
  }
  if (!SUPPORTED_MODEL_TYPES.includes(type as ModelType)) {
    throw new ExitError(
      `${name}: unsupported model_type ${show(type)}: Headroom supports ${SUPPORTED_MODEL_TYPES.join(', ')}`,
    )
  }
  const missing = REQUIRED_FIELDS.filter((f) => c[f] === undefined || c[f] === null)
  if (missing.length > 0) {
    throw new ExitError(`${name}: config.json is missing ${missing.join(', ')} (required for model_type "${String(type)}")`)
  }
  const optionalCounts = ['num_key_value_heads', 'head_dim', 'max_position_embeddings', 'sliding_window'] as const
  const bad = [...REQUIRED_FIELDS, ...optionalCounts].filter(
    (f) => c[f] != null && !(Number.isInteger(c[f]) && (c[f] as number) > 0),
  )
  if (bad.length > 0) {
    throw new ExitError(
      `${name}: config.json fields must be positive integers: ${bad.map((f) => `${f}=${show(c[f])}`).join(', ')}`,
    )
  }
  const huge = [...REQUIRED_FIELDS, ...optionalCounts].filter((f) => c[f] != null && (c[f] as number) > MAX_CONFIG_FIELD[f])
  if (huge.length > 0) {
    throw new ExitError(
      `${name}: config.json sizes beyond any real model: ${huge.map((f) => `${f}=${show(c[f])} (at most ${MAX_CONFIG_FIELD[f]})`).join(', ')}: fix the config.json`,
    )
  }
  const flags = ['tie_word_embeddings', 'attention_bias', 'mlp_bias', 'use_sliding_window'] as const
  const notBool = flags.filter((f) => c[f] != null && typeof c[f] !== 'boolean')
  if (notBool.length > 0) {
    throw new ExitError(
      `${name}: config.json fields must be true or false: ${notBool.map((f) => `${f}=${JSON.stringify(c[f])}`).join(', ')}`,
    )
  }
  const heads = c.num_attention_heads as number
  const kvHeads = (c.num_key_value_heads as number | undefined) ?? heads
  if (heads % kvHeads !== 0) {
    throw new ExitError(
      `${name}: num_attention_heads=${heads} is not a multiple of num_key_value_heads=${kvHeads}`,
    )
  }
  return c as unknown as HfConfig
}
