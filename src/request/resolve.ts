/**
 * Resolving a plan request (the flags of `headroom plan`, the body of `POST /v1/plans`) into a
 * PlanInput: validation against the plan-field table, model and config loading (I/O, so it
 * lives here, above the pure planner), defaults, and the impossible combinations. Fields
 * override --config, the config overrides the defaults, and the defaults are the seed's case.
 * Errors carry the JSON field as their path; the message names fields the way the caller's
 * edge does (`--seq` on the command line, `seq` in JSON).
 */
import { defaultLoraTargets, findHardware, loadModel } from '../catalog/index.ts'
import type { ModelArch } from '../catalog/types.ts'
import { ConfigError, ExitError } from '../errors.ts'
import { fieldName, PLAN_DEFAULTS, PLAN_FIELD_NAMES, PLAN_FIELDS, planRequest, type FieldNames, type PlanFieldName, type PlanRequest } from '../planner/fields.ts'
import { planMemory } from '../planner/plan.ts'
import type { MemoryPlan, Method, PlanInput } from '../planner/types.ts'
import type { Dtype, Quant } from '../units.ts'

export type ResolveOptions = {
  /** How messages name fields: the CLI passes `flags`; JSON callers get field names (the default). */
  names?: FieldNames
  /** Replaces catalog loadModel (tests). */
  loadModel?: (ref: string) => Promise<ModelArch>
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (value === undefined) return 'nothing'
  return JSON.stringify(value) ?? String(value)
}

/**
 * Validates a raw request (a JSON body, or the CLI's flags) and returns it typed; ExitError
 * (exit 2) naming the first bad field, its value and what it accepts.
 * @example parsePlanRequest({ seq: 0 }) // throws "seq must be a whole number of tokens from 1 to 10,000,000, e.g. 2048; got 0"
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
    const known = PLAN_FIELD_NAMES.map((k) => fieldName(k, names))
    throw new ExitError(`unknown field ${show(key)}: the plan fields are ${known.join(', ')}`, { path: key })
  }
  const field = String(issue.path[0] ?? '')
  const value = (raw as Record<string, unknown>)[field]
  const name = fieldName(field, names)
  const expect = field in PLAN_FIELDS ? PLAN_FIELDS[field as PlanFieldName].expect : 'valid'
  throw new ExitError(`${name} must be ${expect}; got ${show(value)}`, { path: field })
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

/** Catalog errors get the request field as their path, whatever the catalog called it. */
async function catalogCall<T>(field: PlanFieldName, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof ExitError) throw new ExitError(err.message, { exitCode: err.exitCode, path: field, code: err.code })
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
  const model = await catalogCall('model', () => (opts.loadModel ?? loadModel)(req.model ?? PLAN_DEFAULTS.model))
  const file = req.config ? await fromConfig(req.config, model, req.device ?? PLAN_DEFAULTS.device, req.method) : {}

  // Method and quantization imply each other (DESIGN.md §2.1): qlora is LoRA over a quantized base.
  let method: Method | undefined = req.method
  let quant: Quant | undefined = req.quant
  if (method && quant) {
    if (method === 'qlora' && quant === 'none') {
      throw incompatible(`${n('method')} qlora needs a quantized base: add ${n('quant')} nf4 (or int8, fp4), or use ${n('method')} lora`, 'quant')
    }
    // Serving a quantized model without an adapter is fine; only training needs trainable weights.
    if (method === 'full' && quant !== 'none' && req.phase !== 'inference') {
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
  const hardware = req.gpu || device === 'cuda' ? await catalogCall('gpu', async () => findHardware(req.gpu ?? PLAN_DEFAULTS.gpu)) : null
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
    loraDropout: req.loraDropout ?? file.loraDropout ?? PLAN_DEFAULTS.loraDropout,
    targets: targetsOf(req.targets, file.targets, model, n),
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
    loss: req.loss ?? file.loss ?? PLAN_DEFAULTS.loss,
    offloadActivations: req.offloadActivations ?? file.offloadActivations ?? PLAN_DEFAULTS.offloadActivations,
    packing: req.packing ?? file.packing ?? PLAN_DEFAULTS.packing,
    ...(req.deviceProfile ? { overhead: await profileOverhead(req.deviceProfile, device, n) } : {}),
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

/** A device profile's fitted overhead terms (I/O here, so the planner stays pure); it must be this device's. */
async function profileOverhead(name: string, device: 'cpu' | 'cuda', n: (f: string) => string): Promise<NonNullable<PlanInput['overhead']>> {
  const { loadProfile } = await import('../sweep/profiles.ts')
  const profile = loadProfile(name)
  if (profile.device !== device) {
    throw incompatible(`${n('deviceProfile')} ${name} was fitted on ${profile.device}${profile.gpu ? ` (${profile.gpu})` : ''}; this plan is for ${device}: add ${n('device')} ${profile.device}, or fit a profile on ${device}`, 'deviceProfile')
  }
  return profile.overhead
}

function targetsOf(flag: string | string[] | undefined, file: PlanInput['targets'] | undefined, model: ModelArch, n: (f: string) => string): PlanInput['targets'] {
  if (flag !== undefined) {
    const list = (Array.isArray(flag) ? flag : flag.split(',')).map((t) => t.trim()).filter((t) => t.length > 0)
    if (list.length === 1 && list[0] === 'all-linear') return 'all-linear'
    if (list.length === 0) throw new ExitError(`${n('targets')} is empty: name modules, e.g. qkv_proj,o_proj, or all-linear`, { path: 'targets' })
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
