/**
 * The one mapping between a KAITO training_config and the planner's PlanInput (DESIGN.md §1,
 * "one truth per fact"). `decode` answers "what will the trainer really run?": every knob the
 * file sets, and for every knob it leaves out the value python/headroom_runtime (train.py,
 * _model.py, config.py) or, for `target: 'cluster'`, KAITO's own runtime would use. `encode`
 * writes a PlanInput back as sections, with the same name maps, so decode(encode(x)) == x.
 *
 * Pure: everything environmental (device, CPU capability, env vars, KAITO preset) comes in
 * through DecodeContext. plan --config, check, init, tune's prediction, auto-fit and the
 * server all go through here; docs/kaito-compat.md lists each default and its source.
 */
import type { Hardware, ModelArch } from '../catalog/types.ts'
import { defaultLoraTargets, KAITO_PHI3_TARGETS } from '../catalog/index.ts'
import { ConfigError } from '../errors.ts'
import type { Target } from './rules.ts'
import type { Attention, LossImpl, Method, Optimizer, PlanInput } from '../planner/types.ts'
import { dtypeFromTorchName, type Dtype, type Quant } from '../units.ts'

/** training_config sections as read from YAML (values not yet typed). */
export type Sections = Record<string, Record<string, unknown>>

/** Everything outside the file that changes what the trainer runs. */
export type DecodeContext = {
  model: ModelArch
  /** Where the run happens: on CPU there is no GPU and bf16/fp16 fall back to fp32 without native support. */
  device: 'cpu' | 'cuda'
  /** The GPU(s) to plan against (count → gpus); null plans without a GPU. Ignored on CPU. */
  hardware?: Hardware | null
  /** Whether this CPU has native bf16 matmuls (runtime/capability.ts cpuHasNativeBf16). Needed on CPU. */
  cpuBf16?: boolean
  /** tune --method; 'auto' (default) follows QuantizationConfig as the trainer does. */
  method?: 'auto' | Method
  /** A sequence length that replaces max_length (check --seq): a what-if, not capped at the model's context. */
  seq?: number
  /** local: Headroom's trainer. cluster: KAITO's tuning pod (its own defaults differ; see decode). */
  target?: Target
  /** The Workspace's tuning.preset.name (KAITO sets DEFAULT_TARGET_MODULES for `phi-3*`). */
  presetName?: string
  /** The trainer process's environment, as values (only these two are read). */
  env?: { DEFAULT_TARGET_MODULES?: string; PYTORCH_CUDA_ALLOC_CONF?: string }
}

/** The knobs decode resolves from the file (PlanInput's memory knobs). */
export type Knob =
  | 'method' | 'dtype' | 'quant' | 'doubleQuant' | 'rank' | 'alpha' | 'loraDropout' | 'targets' | 'batch' | 'seq' | 'gradientCheckpointing' | 'attention' | 'optimizer'
  | 'loss' | 'offloadActivations' | 'packing'

/** A PlanInput and, per knob, where its value came from (a config key, a library default, the device). */
export type Decoded = { input: PlanInput; sources: Record<Knob, string> }

// ---- One name map per knob, shared by decode and encode. ----

/**
 * The levers' keys in TrainingArguments (issue 13). packing and activation_offloading are TRL SFTConfig's;
 * loss_implementation is a Headroom extension (like ModelConfig.attn_implementation) that KAITO's runtime
 * does not know (schema.ts HEADROOM_ONLY_FIELDS: check and render refuse it for a KAITO cluster).
 */
export const LEVER_KEYS = { loss: 'loss_implementation', offloadActivations: 'activation_offloading', packing: 'packing' } as const
const LOSS_OF: Record<string, LossImpl> = { full: 'full', chunked: 'chunked' }

/** PlanInput dtype → torch dtype name (decode reads every torch spelling via units.dtypeFromTorchName). */
export const TORCH_DTYPE_NAMES: Record<Dtype, string> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' }

/** PlanInput attention → ModelConfig.attn_implementation. */
export const ATTN_IMPLEMENTATIONS: Record<Attention, string> = { eager: 'eager', sdpa: 'sdpa', flash: 'flash_attention_2' }
// flex_attention keeps no seq x seq scores either: plan it as sdpa.
const ATTENTION_OF: Record<string, Attention> = { ...invert(ATTN_IMPLEMENTATIONS), flash_attention_3: 'flash', flex_attention: 'sdpa' }

/** PlanInput optimizer → TrainingArguments.optim; adamw is transformers 5's default name. */
export const OPTIM_NAMES: Record<Optimizer, string> = { adamw: 'adamw_torch_fused', adamw_8bit: 'adamw_bnb_8bit', paged_adamw_8bit: 'paged_adamw_8bit', sgd: 'sgd' }
// Every optim train.py's _make_optimizer accepts, by the state it keeps per trainable parameter.
// adagrad/rmsprop keep one fp32 state and adafactor a factored one: planned as AdamW's two, an upper bound.
const OPTIMIZER_OF: Record<string, Optimizer> = {
  ...invert(OPTIM_NAMES),
  adamw_torch: 'adamw',
  adamw_hf: 'adamw',
  adamw_8bit: 'adamw_8bit',
  paged_adamw_32bit: 'adamw',
  adagrad: 'adamw',
  rmsprop: 'adamw',
  adafactor: 'adamw',
}

/**
 * What each runtime uses for a knob the file leaves out, with the source of each number.
 * Headroom's trainer resolves sections over these library defaults (python/headroom_runtime/config.py).
 */
export const RUNTIME_DEFAULTS = {
  /** transformers TrainingArguments.per_device_train_batch_size. */
  batch: 8,
  /** TRL SFTConfig.max_length, tokens. */
  seq: 1024,
  /** TRL SFTConfig.gradient_checkpointing (overrides transformers' false). */
  gradientCheckpointing: true,
  /** peft LoraConfig.r and lora_alpha. */
  rank: 8,
  alpha: 8,
  /** peft LoraConfig.lora_dropout. */
  loraDropout: 0.0,
  /** transformers BitsAndBytesConfig.bnb_4bit_quant_type. */
  quantType: 'fp4' as Quant,
  /** BitsAndBytesConfig.bnb_4bit_compute_dtype None means float32. */
  computeDtype: 'fp32' as Dtype,
  /** Headroom's trainer (_model.compute_dtype) loads in float32 when torch_dtype is unset. */
  dtype: 'fp32' as Dtype,
  /** KAITO's pod passes torch_dtype=None: transformers 5 keeps the checkpoint's dtype; catalog checkpoints are bf16. */
  clusterDtype: 'bf16' as Dtype,
  /** transformers picks sdpa where torch has it (every catalog architecture). */
  attention: 'sdpa' as Attention,
  /** transformers 5 TrainingArguments.optim default adamw_torch_fused: fp32 m and v. */
  optimizer: 'adamw' as Optimizer,
  /** Headroom's trainer: transformers' ForCausalLMLoss over the whole logits unless loss_implementation says chunked. */
  loss: 'full' as LossImpl,
  /** TRL SFTConfig.activation_offloading and SFTConfig.packing. */
  offloadActivations: false,
  packing: false,
} as const

/**
 * The plan input for a training_config as the trainer will run it.
 * @example decode(sections, { model, device: 'cpu', cpuBf16: false }).dtype // 'fp32' when the CPU lacks bf16
 */
export function decode(config: Sections | object, ctx: DecodeContext): PlanInput {
  return decodeExplained(config, ctx).input
}

/**
 * decode, and where each knob's value came from (for check --json, init's header, tune's start line).
 * @example decodeExplained(sections, ctx).sources.seq // 'default: TRL SFTConfig.max_length'
 */
export function decodeExplained(config: Sections | object, ctx: DecodeContext): Decoded {
  const c = config as Sections
  const m = section(c.ModelConfig)
  const q = section(c.QuantizationConfig)
  const l = section(c.LoraConfig)
  const t = section(c.TrainingArguments)
  const cluster = ctx.target === 'cluster'
  const env = { ...(cluster && !ctx.env?.DEFAULT_TARGET_MODULES && ctx.presetName?.toLowerCase().startsWith('phi-3') ? { DEFAULT_TARGET_MODULES: KAITO_PHI3_TARGETS.join(',') } : {}), ...ctx.env }
  const sources = {} as Record<Knob, string>
  const from = <T>(knob: Knob, value: T, source: string): T => {
    sources[knob] = source
    return value
  }

  // train.py: method = --method, else qlora when QuantizationConfig loads 4 or 8 bits, else lora.
  const bits = truthy(q.load_in_4bit) ? 4 : truthy(q.load_in_8bit) ? 8 : null
  const asked = ctx.method && ctx.method !== 'auto' ? ctx.method : undefined
  const method: Method = asked
    ? from('method', asked, `method ${asked} (requested)`)
    : bits
      ? from('method', 'qlora', `QuantizationConfig.load_in_${bits}bit`)
      : from('method', 'lora', 'no QuantizationConfig.load_in_4bit/8bit: LoRA over 16-bit weights')
  if (method === 'full' && bits) {
    const path = `QuantizationConfig.load_in_${bits}bit`
    throw new ConfigError([{ code: 'invalid_value', path, message: `full fine-tuning cannot train a ${bits}-bit quantized base: remove ${path} or use --method qlora` }])
  }
  let quant: Quant = 'none'
  let doubleQuant = false
  if (method === 'qlora' && bits === 8) {
    quant = from('quant', 'int8', 'QuantizationConfig.load_in_8bit')
  } else if (method === 'qlora' && bits === 4) {
    const type = q.bnb_4bit_quant_type
    quant = type === 'nf4' || type === 'fp4' ? from('quant', type, 'QuantizationConfig.bnb_4bit_quant_type') : from('quant', RUNTIME_DEFAULTS.quantType, 'default: BitsAndBytesConfig.bnb_4bit_quant_type')
    doubleQuant = q.bnb_4bit_use_double_quant !== undefined ? from('doubleQuant', truthy(q.bnb_4bit_use_double_quant), 'QuantizationConfig.bnb_4bit_use_double_quant') : from('doubleQuant', false, 'default: BitsAndBytesConfig.bnb_4bit_use_double_quant')
  } else if (method === 'qlora') {
    // train.py: --method qlora with nothing quantized asks for 4-bit nf4 with double quantization.
    quant = from('quant', 'nf4', 'method qlora (requested) without load_in_4bit/8bit: nf4')
    doubleQuant = from('doubleQuant', true, 'method qlora (requested) without load_in_4bit/8bit: double quant')
  } else {
    from('quant', 'none', bits ? `method ${method} (requested) loads the base unquantized` : 'no QuantizationConfig.load_in_4bit/8bit')
  }
  if (!sources.doubleQuant) from('doubleQuant', false, 'applies to 4-bit quantization only')

  const dtype = decodeDtype(m, q, method, quant, ctx, from)

  const rank = num(l.r) ?? RUNTIME_DEFAULTS.rank
  from('rank', rank, l.r !== undefined ? 'LoraConfig.r' : 'default: peft LoraConfig.r')
  const alpha = num(l.lora_alpha) ?? RUNTIME_DEFAULTS.alpha
  from('alpha', alpha, l.lora_alpha !== undefined ? 'LoraConfig.lora_alpha' : 'default: peft LoraConfig.lora_alpha')
  const loraDropout = num(l.lora_dropout) ?? RUNTIME_DEFAULTS.loraDropout
  from('loraDropout', loraDropout, l.lora_dropout !== undefined ? 'LoraConfig.lora_dropout' : 'default: peft LoraConfig.lora_dropout')
  const targets = decodeTargets(l.target_modules, ctx.model, env.DEFAULT_TARGET_MODULES, from)

  const batch = num(t.per_device_train_batch_size) ?? RUNTIME_DEFAULTS.batch
  from('batch', batch, t.per_device_train_batch_size !== undefined ? 'TrainingArguments.per_device_train_batch_size' : 'default: transformers TrainingArguments.per_device_train_batch_size')
  const seq = decodeSeq(t, ctx, from)

  // Headroom's trainer passes gradient_checkpointing to prepare_model_for_kbit_training (QLoRA) or
  // enables it itself (LoRA, full); KAITO's pod calls prepare_model_for_kbit_training(model), whose
  // use_gradient_checkpointing defaults to True, so a quantized run there always checkpoints.
  let gradientCheckpointing: boolean
  if (cluster && quant !== 'none') gradientCheckpointing = from('gradientCheckpointing', true, "KAITO: prepare_model_for_kbit_training's default turns it on for quantized models")
  else if (t.gradient_checkpointing !== undefined) gradientCheckpointing = from('gradientCheckpointing', truthy(t.gradient_checkpointing), 'TrainingArguments.gradient_checkpointing')
  else gradientCheckpointing = from('gradientCheckpointing', RUNTIME_DEFAULTS.gradientCheckpointing, 'default: TRL SFTConfig.gradient_checkpointing')

  const attnName = typeof m.attn_implementation === 'string' ? m.attn_implementation : undefined
  const attention = attnName && ATTENTION_OF[attnName] ? from('attention', ATTENTION_OF[attnName], 'ModelConfig.attn_implementation') : from('attention', RUNTIME_DEFAULTS.attention, 'default: transformers picks sdpa')
  const optimizer = decodeOptimizer(t.optim, from)
  const lossKey = t[LEVER_KEYS.loss]
  const loss =
    typeof lossKey === 'string' && LOSS_OF[lossKey]
      ? from('loss', LOSS_OF[lossKey], `TrainingArguments.${LEVER_KEYS.loss}`)
      : from('loss', RUNTIME_DEFAULTS.loss, `default: the full loss (TrainingArguments.${LEVER_KEYS.loss} ${lossKey === undefined ? 'unset' : `is ${String(lossKey)}, not full or chunked`})`)
  const offloadActivations =
    t[LEVER_KEYS.offloadActivations] !== undefined
      ? from('offloadActivations', truthy(t[LEVER_KEYS.offloadActivations]), `TrainingArguments.${LEVER_KEYS.offloadActivations}`)
      : from('offloadActivations', RUNTIME_DEFAULTS.offloadActivations, `default: TRL SFTConfig.${LEVER_KEYS.offloadActivations}`)
  const packing =
    t[LEVER_KEYS.packing] !== undefined
      ? from('packing', truthy(t[LEVER_KEYS.packing]), `TrainingArguments.${LEVER_KEYS.packing}`)
      : from('packing', RUNTIME_DEFAULTS.packing, `default: TRL SFTConfig.${LEVER_KEYS.packing}`)

  const cuda = ctx.device === 'cuda'
  const alloc = env.PYTORCH_CUDA_ALLOC_CONF
  const input: PlanInput = {
    model: ctx.model,
    phase: 'train',
    method,
    dtype,
    quant,
    doubleQuant,
    rank,
    alpha,
    loraDropout,
    targets,
    batch,
    seq,
    gradientCheckpointing,
    attention,
    optimizer,
    gpu: cuda ? (ctx.hardware?.gpu ?? null) : null,
    gpus: cuda ? (ctx.hardware?.count ?? 1) : 1,
    // accelerate launch (KAITO) and torchrun (Headroom) start one process per GPU: DDP, a full model on each.
    parallelism: 'ddp',
    device: ctx.device,
    // train.py sets expandable_segments:True unless the environment already says otherwise (KAITO's pod sets it too).
    expandableSegments: alloc === undefined || alloc.includes('expandable_segments:True'),
    loss,
    offloadActivations,
    packing,
  }
  return { input, sources }
}

type From = <T>(knob: Knob, value: T, source: string) => T

/**
 * The dtype the trainer computes in: 4-bit QLoRA's matmuls run in bnb_4bit_compute_dtype, other
 * methods in torch_dtype; on a CPU without native bf16, _model.compute_dtype falls back to float32.
 */
function decodeDtype(m: Record<string, unknown>, q: Record<string, unknown>, method: Method, quant: Quant, ctx: DecodeContext, from: From): Dtype {
  const fourBit = method === 'qlora' && (quant === 'nf4' || quant === 'fp4')
  const key = fourBit ? 'QuantizationConfig.bnb_4bit_compute_dtype' : 'ModelConfig.torch_dtype'
  const given = fourBit ? q.bnb_4bit_compute_dtype : m.torch_dtype
  let dtype = dtypeFromTorchName(given)
  let source = dtype ? key : fourBit ? 'default: BitsAndBytesConfig.bnb_4bit_compute_dtype (float32)' : ''
  if (!dtype) {
    if (fourBit) dtype = RUNTIME_DEFAULTS.computeDtype
    else if (ctx.target === 'cluster') {
      dtype = RUNTIME_DEFAULTS.clusterDtype
      source = 'default: KAITO loads the checkpoint dtype (bf16)'
    } else {
      dtype = RUNTIME_DEFAULTS.dtype
      source = `default: the trainer loads float32 when ${key} is ${given === undefined ? 'unset' : String(given)}`
    }
  }
  if (ctx.device === 'cpu' && dtype !== 'fp32') {
    if (ctx.cpuBf16 === undefined) throw new TypeError('decode on device cpu needs ctx.cpuBf16 (runtime/capability.ts cpuHasNativeBf16)')
    if (!ctx.cpuBf16) return from('dtype', 'fp32', `${source}=${TORCH_DTYPE_NAMES[dtype]}, computed in float32: this CPU has no native bf16 (HEADROOM_CPU_BF16 overrides)`)
  }
  return from('dtype', dtype, source)
}

/** _model.target_modules: the config's list or pattern, else DEFAULT_TARGET_MODULES, else the per-model default. */
function decodeTargets(given: unknown, model: ModelArch, envTargets: string | undefined, from: From): PlanInput['targets'] {
  if (Array.isArray(given) && given.length > 0) {
    // peft matches a list entry against the module name's tail: plan with the leaf names.
    return from('targets', given.map((x) => String(x).split('.').pop() ?? String(x)), 'LoraConfig.target_modules')
  }
  if (given === 'all-linear') return from('targets', 'all-linear', 'LoraConfig.target_modules')
  if (typeof given === 'string' && given) {
    // peft re.fullmatch()es a string against each full module name: plan with the names it matches.
    let re: RegExp | null = null
    try {
      re = new RegExp(`^(?:${given})$`)
    } catch {
      re = null
    }
    const names = model.layerLinears.map((x) => x.name)
    const matched = re ? names.filter((n) => [n, `model.layers.0.self_attn.${n}`, `model.layers.0.mlp.${n}`].some((f) => re!.test(f))) : []
    return from('targets', matched, 'LoraConfig.target_modules (a pattern)')
  }
  if (envTargets) return from('targets', envTargets.split(',').map((s) => s.trim()).filter(Boolean), 'DEFAULT_TARGET_MODULES')
  return from('targets', defaultLoraTargets(model), model.modelType === 'phi3' ? "default: KAITO's Phi-3 list" : "default: peft's list for the architecture")
}

/** train.py: max_length, else 1024, truncated at the model's positions (max_seq_length is refused by check and the trainer). */
function decodeSeq(t: Record<string, unknown>, ctx: DecodeContext, from: From): number {
  if (ctx.seq !== undefined) return from('seq', ctx.seq, 'seq (requested)')
  const key = t.max_length !== undefined ? 'max_length' : undefined
  const asked = (key && num(t[key])) || RUNTIME_DEFAULTS.seq
  const source = key ? `TrainingArguments.${key}` : 'default: TRL SFTConfig.max_length'
  const cap = ctx.model.maxPositionEmbeddings
  if (cap > 0 && asked > cap) return from('seq', cap, `${source}=${asked}, truncated at the model's ${cap} positions`)
  return from('seq', asked, source)
}

function decodeOptimizer(optim: unknown, from: From): Optimizer {
  if (typeof optim !== 'string' || !optim) return from('optimizer', RUNTIME_DEFAULTS.optimizer, `default: transformers TrainingArguments.optim (${OPTIM_NAMES.adamw})`)
  const known = OPTIMIZER_OF[optim]
  if (known) return from('optimizer', known, `TrainingArguments.optim=${optim}`)
  // A name train.py does not list (it will refuse it): plan by the state it keeps.
  const guess: Optimizer = optim.startsWith('paged_') && optim.includes('8bit') ? 'paged_adamw_8bit' : optim.includes('8bit') ? 'adamw_8bit' : optim === 'sgd' ? 'sgd' : 'adamw'
  return from('optimizer', guess, `TrainingArguments.optim=${optim} (not one train.py runs; planned as ${guess})`)
}

/**
 * Writes a PlanInput's memory knobs into training_config sections, keeping every other key of
 * `base` (output_dir, dataset, ...). The inverse of decode for every knob a file can express.
 * @example encode(rec.input, sections).TrainingArguments.optim // 'adamw_torch_fused'
 */
export function encode(input: PlanInput, base: Sections = {}): Sections {
  const s: Sections = JSON.parse(JSON.stringify(base ?? {}))
  const model = (s.ModelConfig ??= {})
  const quant = (s.QuantizationConfig ??= {})
  const train = (s.TrainingArguments ??= {})
  const torchName = TORCH_DTYPE_NAMES[input.dtype]
  model.torch_dtype = torchName
  const fourBit = input.method === 'qlora' && (input.quant === 'nf4' || input.quant === 'fp4')
  if (fourBit) {
    quant.load_in_4bit = true
    delete quant.load_in_8bit
    quant.bnb_4bit_quant_type = input.quant
    quant.bnb_4bit_compute_dtype = torchName
    quant.bnb_4bit_use_double_quant = input.doubleQuant
  } else {
    for (const k of ['bnb_4bit_quant_type', 'bnb_4bit_compute_dtype', 'bnb_4bit_use_double_quant']) delete quant[k]
    if (input.method === 'qlora' && input.quant === 'int8') {
      quant.load_in_8bit = true
      delete quant.load_in_4bit
    } else {
      // KAITO's lora template spells "no quantization" as load_in_4bit: false.
      quant.load_in_4bit = false
      delete quant.load_in_8bit
    }
  }
  // Written for full fine-tuning too: the trainer ignores LoraConfig then, and the file still round-trips.
  const lora = (s.LoraConfig ??= {})
  lora.r = input.rank
  lora.lora_alpha = input.alpha
  lora.lora_dropout = input.loraDropout
  lora.target_modules = input.targets === 'all-linear' ? 'all-linear' : [...input.targets]
  // KAITO's ModelConfig has no attn_implementation: write it only when it is not the default.
  const attnGiven = typeof model.attn_implementation === 'string' ? ATTENTION_OF[model.attn_implementation] : undefined
  if (input.attention !== RUNTIME_DEFAULTS.attention) model.attn_implementation = ATTN_IMPLEMENTATIONS[input.attention]
  else if (attnGiven !== 'sdpa') delete model.attn_implementation
  train.per_device_train_batch_size = input.batch
  train.max_length = input.seq
  delete train.max_seq_length
  train.gradient_checkpointing = input.gradientCheckpointing
  train.optim = OPTIM_NAMES[input.optimizer]
  // The levers are written when on, or when base already has the key; a default left out keeps KAITO's files as
  // they were (and loss_implementation, which KAITO's parser rejects, out of every config that does not chunk).
  if ((input.loss ?? 'full') === 'chunked') train[LEVER_KEYS.loss] = 'chunked'
  else delete train[LEVER_KEYS.loss]
  for (const knob of ['offloadActivations', 'packing'] as const) {
    const key = LEVER_KEYS[knob]
    if (input[knob] === true || key in train) train[key] = input[knob] === true
  }
  // bf16/fp16 (autocast) are not planner knobs: left as base has them (init's render sets them for the GPU).
  return s
}

function section(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
}

/** config.py's _coerce: YAML may hand a bool as "true"/"yes"/"1". */
function truthy(v: unknown): boolean {
  if (typeof v === 'string') return ['true', 'yes', '1'].includes(v.toLowerCase())
  return v === true || v === 1
}

/** config.py's _coerce: an int given as a string. */
function num(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined
  const n = Number(v)
  return Number.isFinite(n) ? n : undefined
}

function invert<K extends string>(map: Record<K, string>): Record<string, K> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [v, k])) as Record<string, K>
}
