/**
 * The plan flags as one JSON object (`POST /v1/plans`, `headroom plan`), their validation, and
 * their resolution into a PlanInput: flags override --config, the config overrides the
 * defaults, and the defaults are the seed's case (Phi-3-mini-128k-instruct with KAITO's qlora
 * template on an A100-80GB).
 */
import { z } from 'zod'
import { defaultLoraTargets, findHardware, loadModel } from '../catalog/index.ts'
import type { ModelArch } from '../catalog/types.ts'
import { ConfigError, ExitError } from '../errors.ts'
import type { Dtype, Quant } from '../units.ts'
import { planMemory } from './plan.ts'
import type { MemoryPlan, Method, PlanInput } from './types.ts'

const METHODS = ['full', 'lora', 'qlora'] as const
const DTYPES = ['fp32', 'fp16', 'bf16'] as const
const QUANTS = ['none', 'int8', 'nf4', 'fp4'] as const
const ATTENTIONS = ['eager', 'sdpa', 'flash'] as const
const OPTIMIZERS = ['adamw', 'adamw_8bit', 'paged_adamw_8bit', 'sgd'] as const
const PHASES = ['load', 'train'] as const
const DEVICES = ['cuda', 'cpu'] as const
const PARALLELISMS = ['ddp', 'fsdp'] as const

const count = () => z.number().int().min(1)

/**
 * The plan request: DESIGN.md §2.1's flags in camelCase. Strict: an unknown key is an error.
 * Every field is optional; resolvePlanInput fills what is missing (PLAN_DEFAULTS).
 */
export const planRequest = z.strictObject({
  model: z.string().min(1).optional(),
  config: z.string().min(1).optional(),
  phase: z.enum(PHASES).optional(),
  method: z.enum(METHODS).optional(),
  dtype: z.enum(DTYPES).optional(),
  quant: z.enum(QUANTS).optional(),
  doubleQuant: z.boolean().optional(),
  rank: count().optional(),
  alpha: z.number().positive().optional(),
  /** Module names, comma-separated or as an array, or `all-linear`. */
  targets: z.union([z.string(), z.array(z.string())]).optional(),
  batch: count().optional(),
  seq: count().optional(),
  gradientCheckpointing: z.boolean().optional(),
  attention: z.enum(ATTENTIONS).optional(),
  optimizer: z.enum(OPTIMIZERS).optional(),
  gpu: z.string().min(1).optional(),
  gpus: count().optional(),
  device: z.enum(DEVICES).optional(),
  /** Multi-GPU strategy; accelerate's default (and KAITO's) is DDP. */
  parallelism: z.enum(PARALLELISMS).optional(),
})

export type PlanRequest = z.infer<typeof planRequest>

/**
 * The seed's case: KAITO's qlora-params template (nf4, double quant, bf16, r 8, alpha 8,
 * batch 1) for phi-3-mini-128k-instruct on an A100-80GB. seq 2048 is Headroom's choice (the
 * seed saw 16-bit LoRA stop near 3,500 tokens; 2,048 is a common fine-tuning length).
 */
export const PLAN_DEFAULTS = {
  model: 'phi-3-mini-128k-instruct',
  phase: 'train',
  method: 'qlora',
  dtype: 'bf16',
  quant: 'nf4',
  doubleQuant: true,
  rank: 8,
  alpha: 8,
  batch: 1,
  seq: 2048,
  attention: 'sdpa',
  optimizer: 'adamw',
  gpu: 'A100-80GB',
  device: 'cuda',
  parallelism: 'ddp',
} as const

/** How errors name a field: `--seq` on the command line, `seq` in a JSON body. */
export type FieldNames = 'flags' | 'fields'

export type ResolveOptions = {
  names?: FieldNames
  /** Replaces catalog loadModel (tests). */
  loadModel?: (ref: string) => Promise<ModelArch>
}

const FLAG: Record<string, string> = { doubleQuant: '--double-quant', gradientCheckpointing: '--grad-checkpointing' }

/** `--grad-checkpointing` or `gradientCheckpointing`. */
export function fieldName(field: string, names: FieldNames = 'fields'): string {
  if (names === 'fields') return field
  return FLAG[field] ?? `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
}

const EXPECT: Record<string, string> = {
  model: 'a catalog id, a config.json path or a hub id, e.g. phi-3-mini-128k-instruct',
  config: 'the path of a training_config or ConfigMap YAML file',
  phase: `one of ${PHASES.join(', ')}`,
  method: `one of ${METHODS.join(', ')}`,
  dtype: `one of ${DTYPES.join(', ')}`,
  quant: `one of ${QUANTS.join(', ')}`,
  doubleQuant: 'true or false',
  rank: 'a whole number, 1 or more, e.g. 8',
  alpha: 'a number above 0, e.g. 16',
  targets: 'module names separated by commas, e.g. qkv_proj,o_proj, or all-linear',
  batch: 'a whole number of sequences, 1 or more, e.g. 1',
  seq: 'a whole number of tokens, 1 or more, e.g. 2048',
  gradientCheckpointing: 'true or false',
  attention: `one of ${ATTENTIONS.join(', ')}`,
  optimizer: `one of ${OPTIMIZERS.join(', ')}`,
  gpu: 'a GPU name or Azure SKU, e.g. A100-80GB or Standard_NC24ads_A100_v4',
  gpus: 'a whole number of GPUs, 1 or more',
  device: `one of ${DEVICES.join(', ')}`,
  parallelism: `one of ${PARALLELISMS.join(', ')}`,
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (value === undefined) return 'nothing'
  return JSON.stringify(value) ?? String(value)
}

/**
 * Validates a raw request (a JSON body, or the CLI's flags) and returns it typed; ExitError
 * (exit 2) naming the first bad field, its value and what it accepts.
 * @example parsePlanRequest({ seq: 0 }) // throws "seq must be a whole number of tokens, 1 or more, e.g. 2048; got 0"
 */
export function parsePlanRequest(raw: unknown, names: FieldNames = 'fields'): PlanRequest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ExitError(`the plan request must be a JSON object of plan fields, got ${show(raw)}`, { path: '' })
  }
  const result = planRequest.safeParse(raw)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]
    const known = Object.keys(EXPECT).map((k) => fieldName(k, names))
    throw new ExitError(`unknown field ${show(key)}: the plan fields are ${known.join(', ')}`, { path: key })
  }
  const field = String(issue.path[0] ?? '')
  const value = (raw as Record<string, unknown>)[field]
  const name = fieldName(field, names)
  throw new ExitError(`${name} must be ${EXPECT[field] ?? 'valid'}; got ${show(value)}`, { path: field })
}

/** What a --config file says, as plan fields (the config module maps KAITO's sections). */
async function fromConfig(path: string, model: ModelArch, device: 'cpu' | 'cuda', method: Method | undefined): Promise<Partial<PlanInput>> {
  const config = await import('../config/index.ts')
  const parsed = await config.loadTuningConfig(path)
  if (parsed.issues.length > 0 || !parsed.value) {
    const why = parsed.issues.length ? parsed.issues : parsed.warnings.length ? parsed.warnings : [{ code: 'no_training_config', path: 'training_config', message: `${path} holds no training_config to plan` }]
    throw new ConfigError(why)
  }
  // The codec decodes the file as the trainer would run it on this device (CPU bf16 capability included).
  const { cpuHasNativeBf16 } = await import('../runtime/capability.ts')
  const input = config.toPlanInput(parsed.value, { model, hardware: null, device, cpuBf16: cpuHasNativeBf16(), method })
  // The fields the file does not set come from the runtime's defaults there; flags still override all of them.
  const { model: _m, gpu: _g, gpus: _n, device: _d, phase: _p, expandableSegments: _e, ...fields } = input
  return fields
}

/** Catalog errors name CLI flags; a JSON caller gets its own field name as the path. */
async function catalogCall<T>(field: string, names: FieldNames, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof ExitError && names === 'fields') throw new ExitError(err.message, { exitCode: err.exitCode, path: field })
    throw err
  }
}

function incompatible(message: string, field: string): ExitError {
  return new ExitError(message, { path: field })
}

/**
 * Resolves a request into a PlanInput: loads the model and GPU from the catalog, reads
 * --config, applies defaults, and rejects impossible combinations with ExitError.
 * @example await resolvePlanInput({ method: 'lora', seq: 4096 })
 */
export async function resolvePlanInput(request: unknown, opts: ResolveOptions = {}): Promise<PlanInput> {
  const names = opts.names ?? 'fields'
  const req = parsePlanRequest(request, names)
  const n = (f: string) => fieldName(f, names)
  const model = await catalogCall('model', names, () => (opts.loadModel ?? loadModel)(req.model ?? PLAN_DEFAULTS.model))
  const file = req.config ? await fromConfig(req.config, model, req.device ?? PLAN_DEFAULTS.device, req.method) : {}

  // Method and quantization imply each other (DESIGN.md §2.1): qlora is LoRA over a quantized base.
  let method: Method | undefined = req.method
  let quant: Quant | undefined = req.quant
  if (method && quant) {
    if (method === 'qlora' && quant === 'none') {
      throw incompatible(`${n('method')} qlora needs a quantized base: add ${n('quant')} nf4 (or int8, fp4), or use ${n('method')} lora`, 'quant')
    }
    if (method === 'full' && quant !== 'none') {
      throw incompatible(
        `${n('method')} full cannot train ${quant}-quantized weights (bitsandbytes weights are frozen): use ${n('method')} qlora, or drop ${n('quant')}`,
        'quant',
      )
    }
    if (method === 'lora' && quant !== 'none') {
      throw incompatible(
        `${n('method')} lora trains over 16-bit weights; LoRA over ${quant} weights is QLoRA: use ${n('method')} qlora, or drop ${n('quant')}`,
        'quant',
      )
    }
  }
  if (method && !quant) quant = method === 'qlora' ? (file.quant && file.quant !== 'none' ? file.quant : PLAN_DEFAULTS.quant) : 'none'
  if (quant && !method) method = quant === 'none' ? (file.method === 'full' ? 'full' : 'lora') : 'qlora'
  if (!method && !quant) {
    if (file.method && file.quant) {
      method = file.method
      quant = file.quant
    } else if (req.dtype) {
      // A precision named alone is the precision asked for, as in the seed's table (Float32 / BFloat16 / INT8 / INT4).
      method = 'lora'
      quant = 'none'
    } else {
      method = PLAN_DEFAULTS.method
      quant = PLAN_DEFAULTS.quant
    }
  }
  const m = method as Method
  const q = quant as Quant
  const fourBit = q === 'nf4' || q === 'fp4'
  if (req.doubleQuant === true && !fourBit) {
    throw incompatible(`${n('doubleQuant')} applies to 4-bit quantization only: add ${n('quant')} nf4, or drop ${n('doubleQuant')}`, 'doubleQuant')
  }
  // An explicit --quant follows BitsAndBytesConfig (no double quant); otherwise the config, else KAITO's template (on).
  const doubleQuant = fourBit && (req.doubleQuant ?? (req.quant !== undefined ? false : (file.doubleQuant ?? true)))

  const device = req.device ?? PLAN_DEFAULTS.device
  const hardware = req.gpu || device === 'cuda' ? await catalogCall('gpu', names, async () => findHardware(req.gpu ?? PLAN_DEFAULTS.gpu)) : null
  const gpus = req.gpus ?? hardware?.count ?? 1
  const dtype: Dtype = req.dtype ?? file.dtype ?? PLAN_DEFAULTS.dtype

  const input: PlanInput = {
    model,
    phase: req.phase ?? PLAN_DEFAULTS.phase,
    method: m,
    dtype,
    quant: q,
    doubleQuant,
    rank: req.rank ?? file.rank ?? PLAN_DEFAULTS.rank,
    alpha: req.alpha ?? file.alpha ?? PLAN_DEFAULTS.alpha,
    targets: targetsOf(req.targets, file.targets, model),
    batch: req.batch ?? file.batch ?? PLAN_DEFAULTS.batch,
    seq: req.seq ?? file.seq ?? PLAN_DEFAULTS.seq,
    // transformers leaves checkpointing off; peft's prepare_model_for_kbit_training turns it on for k-bit models.
    gradientCheckpointing: req.gradientCheckpointing ?? file.gradientCheckpointing ?? m === 'qlora',
    attention: req.attention ?? file.attention ?? PLAN_DEFAULTS.attention,
    optimizer: req.optimizer ?? file.optimizer ?? PLAN_DEFAULTS.optimizer,
    gpu: device === 'cpu' && !req.gpu ? null : (hardware?.gpu ?? null),
    gpus,
    parallelism: req.parallelism ?? PLAN_DEFAULTS.parallelism,
    device,
    expandableSegments: true,
  }
  if (input.method === 'full' && req.rank !== undefined) {
    throw incompatible(`${n('rank')} sets the LoRA rank and ${n('method')} full trains every weight: drop ${n('rank')} or use ${n('method')} lora`, 'rank')
  }
  if (input.device === 'cpu' && input.attention === 'flash') {
    throw incompatible(`${n('attention')} flash needs a CUDA GPU: use ${n('attention')} sdpa with ${n('device')} cpu`, 'attention')
  }
  if (input.gpus > 1 && input.device === 'cpu') {
    throw incompatible(`${n('gpus')} ${input.gpus} needs ${n('device')} cuda`, 'gpus')
  }
  return input
}

function targetsOf(flag: string | string[] | undefined, file: PlanInput['targets'] | undefined, model: ModelArch): PlanInput['targets'] {
  if (flag !== undefined) {
    const list = (Array.isArray(flag) ? flag : flag.split(',')).map((t) => t.trim()).filter((t) => t.length > 0)
    if (list.length === 1 && list[0] === 'all-linear') return 'all-linear'
    if (list.length === 0) throw new ExitError('--targets is empty: name modules, e.g. qkv_proj,o_proj, or all-linear', { path: 'targets' })
    return list
  }
  if (file !== undefined) return file
  return defaultLoraTargets(model)
}

/**
 * The MemoryPlan for a request: what `POST /v1/plans` answers and `plan --json` prints.
 * @example (await planFromRequest({ method: 'lora', attention: 'eager' })).maxSeqLen
 */
export async function planFromRequest(request: unknown, opts: ResolveOptions = {}): Promise<MemoryPlan> {
  return planMemory(await resolvePlanInput(request, opts))
}
