/**
 * The planner's input and output. MemoryPlan is the public JSON contract of
 * `headroom plan --json` and `POST /v1/plans` (DESIGN.md §2.1): keep the names.
 */
import type { Dtype, Quant } from '../units.ts'
import type { Gpu, ModelArch } from '../catalog/types.ts'
import type { CalibratedOverhead } from './overhead.ts'
import type { ATTENTIONS, DEVICES, LOSSES, METHODS, OPTIMIZERS, PARALLELISMS, PHASES } from './fields.ts'

// The enums come from the plan-field table (fields.ts), the one place their values are listed.
export type Phase = (typeof PHASES)[number]
export type Method = (typeof METHODS)[number]
export type Attention = (typeof ATTENTIONS)[number]
export type Optimizer = (typeof OPTIMIZERS)[number]
export type Device = (typeof DEVICES)[number]
export type Parallelism = (typeof PARALLELISMS)[number]
export type LossImpl = (typeof LOSSES)[number]

/** A fully resolved planning question: every knob has a value. */
export type PlanInput = {
  model: ModelArch
  phase: Phase
  method: Method
  /** Compute / storage dtype of unquantized weights (ModelConfig.torch_dtype). */
  dtype: Dtype
  quant: Quant
  doubleQuant: boolean
  rank: number
  alpha: number
  /** peft LoraConfig.lora_dropout, 0 <= p < 1: above 0 each adapted module keeps a dropped copy of its input and a mask. */
  loraDropout: number
  /** peft target_modules: leaf module names, or every Linear but lm_head. */
  targets: string[] | 'all-linear'
  /** Micro-batch per device (per_device_train_batch_size). */
  batch: number
  /** Tokens per sequence after truncation. */
  seq: number
  gradientCheckpointing: boolean
  attention: Attention
  optimizer: Optimizer
  gpu: Gpu | null
  gpus: number
  parallelism: Parallelism
  device: Device
  /** PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True (Headroom sets it by default). */
  expandableSegments: boolean
  // The levers (issue 13). Optional so that inputs written before them plan as before: absent is the default.
  /** Cross-entropy over the whole logits (full, the default) or over LOSS_CHUNK_TOKENS tokens at a time (chunked). */
  loss?: LossImpl
  /** Checkpointed block inputs kept in host memory (CUDA with checkpointing only); default false. */
  offloadActivations?: boolean
  /** Padding-free packing of examples; changes throughput, not the peak (docs/memory-model.md); default false. */
  packing?: boolean
  /** A device profile's fitted overhead terms (plan --device-profile); absent: the published constants. */
  overhead?: CalibratedOverhead
}

export type Breakdown = {
  weights: number
  adapters: number
  gradients: number
  optimizer: number
  activations: number
  logits: number
  overhead: number
}

export type PlanWarning = { code: string; message: string }

export type MemoryPlan = {
  model: { name: string; params: number }
  phase: Phase
  device: Device
  /** What the device shows at peak: allocated peak + allocator slack + CUDA context, bytes. */
  peakBytes: number
  /** What torch.cuda.max_memory_allocated() would report, bytes. */
  peakAllocatedBytes: number
  /** Per component, bytes; sums to peakBytes. */
  breakdown: Breakdown
  trainableParams: number
  trainablePercent: number
  matchedTargets: string[]
  unmatchedTargets: string[]
  gpu: { name: string; memoryBytes: number } | null
  fits: boolean | null
  headroomBytes: number | null
  /** Longest sequence that fits on the GPU with everything else fixed. */
  maxSeqLen: number | null
  warnings: PlanWarning[]
  /** The device profile whose fitted overhead terms this plan used (plan --device-profile). */
  calibratedBy?: string
}

/** What `plan --recommend` and `init` optimise for. */
export type RecommendGoal = 'max-throughput' | 'max-context'

/** One plain-words reason for one choice, e.g. knob `method`, "LoRA needs 96 GiB at ...". */
export type RecommendationReason = { knob: string; message: string }

/** The configuration the fit search chose, its plan, and why. */
export type Recommendation = {
  input: PlanInput
  plan: MemoryPlan
  reasons: RecommendationReason[]
  /** How many candidate configurations were planned. */
  candidatesSearched: number
  /** Env vars the job should run with, e.g. PYTORCH_CUDA_ALLOC_CONF. */
  env: Record<string, string>
}
