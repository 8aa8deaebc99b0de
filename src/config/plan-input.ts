/**
 * From a training_config to the planner's question: every memory knob the ConfigMap sets,
 * and the runtime's default for every knob it leaves out (KAITO v0.12.0 runs transformers 5,
 * TRL 1.x SFTConfig and peft 0.11.1; docs/kaito-compat.md lists each default's source).
 */
import type { Hardware, ModelArch } from '../catalog/types.ts'
import type { Attention, Optimizer, PlanInput } from '../planner/types.ts'
import { dtypeFromTorchName, type Dtype, type Quant } from '../units.ts'
import { defaultLoraTargets } from '../catalog/index.ts'
import type { Target } from './rules.ts'
import type { TrainingConfig } from './schema.ts'

/** The runtime's value for each memory knob a config leaves out. */
export const RUNTIME_DEFAULTS = {
  /** TrainingArguments.per_device_train_batch_size (transformers). */
  batch: 8,
  /** SFTConfig.max_length (TRL), tokens. */
  seq: 1024,
  /** SFTConfig.gradient_checkpointing (TRL overrides transformers' false). */
  gradientCheckpointing: true,
  /** LoraConfig.r and lora_alpha (peft). */
  rank: 8,
  alpha: 8,
  /** BitsAndBytesConfig.bnb_4bit_quant_type (transformers). */
  quantType: 'fp4' as Quant,
  /** transformers picks sdpa where torch has it. */
  attention: 'sdpa' as Attention,
  /** TrainingArguments.optim: adamw_torch_fused (fp32 m and v). */
  optimizer: 'adamw' as Optimizer,
  /** transformers 5 loads a checkpoint in its stored dtype; catalog checkpoints are bf16. */
  dtype: 'bf16' as Dtype,
} as const



const ATTENTION: Record<string, Attention> = {
  eager: 'eager',
  sdpa: 'sdpa',
  flash_attention_2: 'flash',
  flash_attention_3: 'flash',
  flex_attention: 'sdpa',
}

/** transformers OptimizerNames grouped by the optimizer state they keep per trainable parameter. */
export function optimizerOf(optim: string | undefined): Optimizer {
  if (!optim) return RUNTIME_DEFAULTS.optimizer
  if (optim.startsWith('paged_') && optim.includes('8bit')) return 'paged_adamw_8bit'
  if (optim.includes('8bit')) return 'adamw_8bit'
  if (optim === 'sgd') return 'sgd'
  return 'adamw'
}

export type PlanRequestOptions = {
  model: ModelArch
  /** The GPU(s): a Hardware from findHardware, or null to plan without a GPU. */
  hardware?: Hardware | null
  /** Overrides max_length (headroom check --seq). */
  seq?: number
  /** KAITO sets DEFAULT_TARGET_MODULES for phi-3 presets on a cluster. */
  target?: Target
  presetName?: string
}

/**
 * The planner's input for a training_config on a model and GPU.
 * @example toPlanInput(parsed.value, { model: await loadModel('phi-3-mini-128k-instruct'), hardware: findHardware('A100-80GB') })
 */
export function toPlanInput(config: TrainingConfig | Record<string, unknown>, opts: PlanRequestOptions): PlanInput {
  const c = config as TrainingConfig
  const m = c.ModelConfig ?? {}
  const q = c.QuantizationConfig ?? {}
  const l = c.LoraConfig ?? {}
  const t = c.TrainingArguments ?? {}
  const quant: Quant = q.load_in_4bit === true ? (q.bnb_4bit_quant_type ?? RUNTIME_DEFAULTS.quantType) : q.load_in_8bit === true ? 'int8' : 'none'
  const hardware = opts.hardware ?? null
  return {
    model: opts.model,
    phase: 'train',
    // KAITO's runtime always applies LoRA; quantization alone makes it QLoRA.
    method: quant === 'none' ? 'lora' : 'qlora',
    dtype: dtypeFromTorchName(m.torch_dtype) ?? RUNTIME_DEFAULTS.dtype,
    quant,
    doubleQuant: quant !== 'none' && quant !== 'int8' && q.bnb_4bit_use_double_quant === true,
    rank: l.r ?? RUNTIME_DEFAULTS.rank,
    alpha: l.lora_alpha ?? RUNTIME_DEFAULTS.alpha,
    targets: targetsOf(l.target_modules, opts),
    batch: t.per_device_train_batch_size ?? RUNTIME_DEFAULTS.batch,
    seq: opts.seq ?? t.max_length ?? RUNTIME_DEFAULTS.seq,
    // prepare_model_for_kbit_training turns checkpointing on for every quantized model.
    gradientCheckpointing: quant !== 'none' ? true : (t.gradient_checkpointing ?? RUNTIME_DEFAULTS.gradientCheckpointing),
    attention: (m.attn_implementation && ATTENTION[m.attn_implementation]) || RUNTIME_DEFAULTS.attention,
    optimizer: optimizerOf(t.optim),
    gpu: hardware?.gpu ?? null,
    gpus: hardware?.count ?? 1,
    // accelerate launch starts one process per GPU: DDP, a full model copy on each.
    parallelism: 'ddp',
    device: 'cuda',
    expandableSegments: true,
  }
}

function targetsOf(targets: string[] | string | undefined, opts: PlanRequestOptions): string[] | 'all-linear' {
  if (Array.isArray(targets)) return targets.map((t) => t.split('.').pop() ?? t)
  if (targets === 'all-linear') return 'all-linear'
  if (typeof targets === 'string') {
    // A regex: plan with the module names it matches.
    try {
      const re = new RegExp(`^(?:${targets})$`)
      const names = opts.model.layerLinears.map((m) => m.name)
      return names.filter((n) => [n, `model.layers.0.self_attn.${n}`, `model.layers.0.mlp.${n}`].some((f) => re.test(f)))
    } catch {
      return []
    }
  }
  return defaultLoraTargets(opts.model)
}
