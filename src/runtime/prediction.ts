/**
 * The planner's prediction for the exact run the trainer is about to do: the same model, the
 * training_config resolved the way python/headroom_runtime/train.py resolves it, and the same
 * device (on CPU: no CUDA context, no allocator slack). The mapping itself is the codec's
 * (config/codec.ts decode); this module supplies the machine's facts and reads the files.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '../errors.ts'
import type { MethodChoice, Parallelism } from './trainer-choices.ts'
import { findGpu, loadModel } from '../catalog/index.ts'
import type { Gpu, ModelArch } from '../catalog/types.ts'
import { decode, type Sections } from '../config/codec.ts'
import { readTuningFile } from '../config/parse.ts'
import { planMemory } from '../planner/index.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'
import { cpuHasNativeBf16 } from './capability.ts'
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
  method?: MethodChoice
  /** tune's --loss, --offload-activations, --packing: they override the config's keys, in the trainer and here. */
  levers?: Levers
  /** Distributed runs: ranks (world size) and how the model is spread; the plan is then per rank. */
  ranks?: number
  parallelism?: Parallelism
}

/** The lever flags tune passes to the trainer; an undefined one leaves the config's key (or its default). */
export type Levers = Partial<Pick<PlanInput, 'loss' | 'offloadActivations' | 'packing'>>

export type RunPrediction = {
  record: PredictionRecord
  input: PlanInput
  plan: MemoryPlan
  /** The training_config sections as read (for --auto-fit to adjust). */
  sections: Sections
  /** Re-plans at another sequence length (the longest batch the trainer actually ran). */
  atSeq(seq: number): { peakAllocatedBytes: number; breakdown: Record<string, number> }
}

export type { Sections }

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
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`training config ${path} does not exist`)
    throw err
  }
  // The config module's reader, so every door sees the same sections (Helm expressions included).
  const file = readTuningFile(text, { file: path })
  const unit = file.units.find((u) => u.raw && u.kind !== 'default-template')
  if (!unit?.raw) {
    const errors = file.issues.filter((i) => i.severity !== 'warning')
    if (errors.length) throw new ConfigError(errors)
    throw new Error(`${path} holds no training_config map`)
  }
  const sections: Sections = {}
  for (const [name, section] of Object.entries(unit.raw)) sections[name] = isMap(section) ? { ...section } : {}
  return sections
}

function isMap(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * The trainer's resolution of a training_config into one planner question: the codec's decode
 * with this machine's facts (CPU bf16 capability, the GPU nvidia-smi reports, the environment).
 */
export function planInputFor(sections: Sections, model: ModelArch, ctx: Pick<PredictContext, 'device' | 'method' | 'levers' | 'ranks' | 'parallelism'>): PlanInput {
  const gpu = ctx.device === 'cuda' ? detectedGpu() : null
  const input = decode(sections, {
    model,
    device: ctx.device,
    hardware: gpu ? { gpu, count: 1 } : null,
    cpuBf16: cpuHasNativeBf16(),
    method: ctx.method,
    target: 'local',
    env: { DEFAULT_TARGET_MODULES: process.env.DEFAULT_TARGET_MODULES, PYTORCH_CUDA_ALLOC_CONF: process.env.PYTORCH_CUDA_ALLOC_CONF },
  })
  // The trainer's flags win over the file's keys (train.py), so they do here.
  for (const [k, v] of Object.entries(ctx.levers ?? {})) if (v !== undefined) Object.assign(input, { [k]: v })
  // Under torchrun every rank is one "GPU" of the plan (on CPU too: a rank is a process with
  // its own replica or shard), so the planner's per-rank terms apply: DDP's gradient buckets,
  // FSDP's 1/ranks shards plus the all-gathered units.
  const ranks = ctx.ranks ?? 1
  return ranks > 1 ? { ...input, gpus: ranks, parallelism: ctx.parallelism ?? 'ddp' } : input
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

