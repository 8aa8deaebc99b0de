/**
 * The planner's prediction for the exact run the trainer is about to do: the same model, the
 * training_config resolved the way python/headroom_runtime/train.py resolves it, and the same
 * device (on CPU: no CUDA context, no allocator slack). The resolution rules below mirror the
 * trainer's — keep them in step with train.py, _model.py and config.py.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from '../errors.ts'
import { defaultLoraTargets, findGpu, loadModel } from '../catalog/index.ts'
import type { Gpu, ModelArch } from '../catalog/types.ts'
import { planMemory } from '../planner/index.ts'
import type { Attention, MemoryPlan, Method, Optimizer, PlanInput } from '../planner/types.ts'
import { dtypeFromTorchName, type Dtype, type Quant } from '../units.ts'
import { nvidiaGpuNames } from './device.ts'
import { runtimePaths } from './python-env.ts'
import type { PredictionRecord } from './run-record.ts'

export type PredictContext = {
  /** training_config path, or undefined for the trainer's default ($YAML_FILE_PATH, else its built-in config). */
  config?: string
  /** Model directory, config.json path, preset, hub id or embedded name; default as the trainer picks it. */
  model?: string
  device: 'cpu' | 'cuda'
  /** --method, when the user overrides what the config implies. */
  method?: 'auto' | 'lora' | 'qlora' | 'full'
}

export type RunPrediction = {
  record: PredictionRecord
  input: PlanInput
  plan: MemoryPlan
  /** The training_config sections as read (for --auto-fit to adjust). */
  sections: Sections
  /** Re-plans at another sequence length (the longest batch the trainer actually ran). */
  atSeq(seq: number): { peakAllocatedBytes: number; breakdown: Record<string, number> }
}

export type Sections = Record<string, Record<string, unknown>>

/**
 * Plans the run's peak on its device.
 * @example (await predictRun({ model: '.headroom/assets/tiny-phi3', device: 'cpu' })).record.peakAllocatedBytes
 */
export async function predictRun(ctx: PredictContext): Promise<RunPrediction> {
  const sections = readSections(ctx.config)
  const model = await loadModel(modelRef(ctx.model, sections))
  return predictionFor(planInputFor(sections, model, ctx), sections)
}

/** The prediction for an already resolved input (e.g. the configuration --auto-fit chose). */
export function predictionFor(input: PlanInput, sections: Sections): RunPrediction {
  const plan = planMemory(input)
  return {
    input,
    plan,
    sections,
    record: {
      peakAllocatedBytes: plan.peakAllocatedBytes,
      peakBytes: plan.peakBytes,
      seq: input.seq,
      batch: input.batch,
      method: input.method,
      device: input.device,
      breakdown: { ...plan.breakdown },
    },
    atSeq(seq: number) {
      const again = planMemory({ ...input, seq })
      return { peakAllocatedBytes: again.peakAllocatedBytes, breakdown: { ...again.breakdown } }
    },
  }
}

// The trainer's embedded models (_model.py EMBEDDED), built under .headroom/assets.
const EMBEDDED: Record<string, string> = { default: 'tiny-phi3', 'tiny-phi3': 'tiny-phi3', 'tiny-llama': 'tiny-llama' }

/** What the trainer will load: --model, else ModelConfig.pretrained_model_name_or_path, else the default. */
function modelRef(given: string | undefined, sections: Sections): string {
  const ref = given ?? (sections.ModelConfig?.pretrained_model_name_or_path as string | undefined) ?? 'default'
  return EMBEDDED[ref] ? join(runtimePaths().assetsDir, EMBEDDED[ref]) : ref
}

/** The training_config sections from a ConfigMap or bare document (the trainer's default when no path). */
export function readSections(configPath: string | undefined): Sections {
  const path = configPath ?? process.env.YAML_FILE_PATH ?? join(runtimePaths().pythonPath, 'headroom_runtime', 'default_config.yaml')
  let doc: unknown
  try {
    doc = parseYaml(readFileSync(path, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`training config ${path} does not exist`)
    throw new ConfigError([{ code: 'invalid_yaml', path: 'training_config', file: path, message: `is not valid YAML: ${(err as Error).message.split('\n')[0]}` }])
  }
  if (isMap(doc) && doc.kind === 'ConfigMap' && isMap(doc.data) && typeof doc.data['training_config.yaml'] === 'string') {
    doc = parseYaml(doc.data['training_config.yaml'])
  }
  const tc = isMap(doc) ? doc.training_config : undefined
  if (!isMap(tc)) throw new Error(`${path} holds no training_config map`)
  const sections: Sections = {}
  for (const [name, section] of Object.entries(tc)) sections[name] = isMap(section) ? { ...section } : {}
  return sections
}

function isMap(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const OPTIMIZERS: Record<string, Optimizer> = {
  adamw_torch: 'adamw',
  adamw_torch_fused: 'adamw',
  adamw_hf: 'adamw',
  adamw_8bit: 'adamw_8bit',
  adamw_bnb_8bit: 'adamw_8bit',
  paged_adamw_8bit: 'paged_adamw_8bit',
  sgd: 'sgd',
}
const ATTENTION: Record<string, Attention> = { eager: 'eager', sdpa: 'sdpa', flash_attention_2: 'flash', flash_attention_3: 'flash' }

/** The trainer's resolution of a training_config into one planner question. */
export function planInputFor(sections: Sections, model: ModelArch, ctx: Pick<PredictContext, 'device' | 'method'>): PlanInput {
  const modelCfg = sections.ModelConfig ?? {}
  const quantCfg = sections.QuantizationConfig ?? {}
  const lora = sections.LoraConfig ?? {}
  const train = sections.TrainingArguments ?? {}
  const bits = quantCfg.load_in_4bit === true ? 4 : quantCfg.load_in_8bit === true ? 8 : null
  const method: Method = ctx.method && ctx.method !== 'auto' ? ctx.method : bits ? 'qlora' : 'lora'
  let quant: Quant = 'none'
  let doubleQuant = false
  if (method === 'qlora') {
    if (bits === 8) quant = 'int8'
    else if (bits === 4) {
      // BitsAndBytesConfig's default quant type is fp4.
      quant = quantCfg.bnb_4bit_quant_type === 'nf4' ? 'nf4' : 'fp4'
      doubleQuant = quantCfg.bnb_4bit_use_double_quant === true
    } else {
      // --method qlora with no quantization asked for: the trainer uses nf4 + double quant.
      quant = 'nf4'
      doubleQuant = true
    }
  }
  const requested = method === 'qlora' ? (quantCfg.bnb_4bit_compute_dtype ?? modelCfg.torch_dtype) : modelCfg.torch_dtype
  const dtype = effectiveDtype(requested, ctx.device)
  const maxLength = Number(train.max_length ?? 1024)
  return {
    model,
    phase: 'train',
    method,
    dtype,
    quant,
    doubleQuant,
    rank: Number(lora.r ?? 8),
    alpha: Number(lora.lora_alpha ?? 8),
    targets: targetsFor(lora.target_modules, model),
    // transformers' TrainingArguments default micro-batch.
    batch: Number(train.per_device_train_batch_size ?? 8),
    seq: Math.min(maxLength, model.maxPositionEmbeddings),
    // TRL's SFTConfig turns gradient checkpointing on unless the config says otherwise.
    gradientCheckpointing: train.gradient_checkpointing === undefined ? true : train.gradient_checkpointing === true,
    // transformers 5 picks sdpa when the model supports it, which these architectures do.
    attention: ATTENTION[String(modelCfg.attn_implementation ?? 'sdpa')] ?? 'sdpa',
    optimizer: OPTIMIZERS[String(train.optim ?? 'adamw_torch')] ?? 'adamw',
    gpu: ctx.device === 'cuda' ? detectedGpu() : null,
    gpus: 1,
    parallelism: 'ddp',
    device: ctx.device,
    expandableSegments: (process.env.PYTORCH_CUDA_ALLOC_CONF ?? 'expandable_segments:True').includes('expandable_segments:True'),
  }
}

function targetsFor(given: unknown, model: ModelArch): string[] | 'all-linear' {
  if (given === 'all-linear') return 'all-linear'
  if (Array.isArray(given) && given.length) return given.map(String)
  if (typeof given === 'string' && given) return given.split(',').map((s) => s.trim())
  if (process.env.DEFAULT_TARGET_MODULES) return process.env.DEFAULT_TARGET_MODULES.split(',')
  return defaultLoraTargets(model)
}

/** The trainer computes in float32 when none is named, and on a CPU without native bf16/fp16. */
function effectiveDtype(requested: unknown, device: 'cpu' | 'cuda'): Dtype {
  const name = dtypeFromTorchName(requested)
  if (!name) return 'fp32'
  if (device === 'cpu' && name !== 'fp32' && !cpuHasNativeBf16()) return 'fp32'
  return name
}

function cpuHasNativeBf16(): boolean {
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8')
    return flags.includes('avx512_bf16') || flags.includes('amx_bf16')
  } catch {
    return false
  }
}

function detectedGpu(): Gpu | null {
  const name = nvidiaGpuNames()[0]
  if (!name) return null
  try {
    return findGpu(name)
  } catch {
    return null
  }
}

