/**
 * `checkConfig`: a tuning config against KAITO's rules, Headroom's rules, and (given a model
 * and GPU, from flags or from a Workspace in the same file) the memory planner. The CLI's
 * `headroom check` and the server's POST /v1/checks both call it and return its result.
 */
import { findHardware, findModelSync, loadModel } from '../catalog/index.ts'
import type { Hardware, ModelArch } from '../catalog/types.ts'
import { ExitError, type Issue } from '../errors.ts'
import { planMemory } from '../planner/index.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'
import { messages } from './messages.ts'
import { bySeverity, locateIssues, readTuningFile, workspaceMethod, type TuningUnit } from './parse.ts'
import { decodeExplained, type Decoded } from './codec.ts'
import { bestPractices, memoryFit, runRules, type RuleContext, type Target, type TuningMethod } from './rules.ts'

/** Errors that leave a field's value unusable for planning (wrong type, out of range). */
const UNPLANNABLE = new Set(['invalid_type', 'out_of_range', 'invalid_value', 'rule_failed'])

export type CheckOptions = {
  /** Shown in issue positions. */
  file?: string
  /** Catalog id, config.json path or hub id (a usage error when unknown). */
  model?: string | ModelArch
  /** GPU name or instance type (a usage error when unknown). */
  gpu?: string | Hardware
  /** Sequence length to plan at; overrides TrainingArguments.max_length. */
  seq?: number
  method?: TuningMethod
  /** cluster adds KAITO's output_dir rule and rejects Headroom-only fields. Default local. */
  target?: Target
  /** How option errors name an option: `--seq` for the CLI (default), `seq` for a JSON body. */
  names?: 'flags' | 'fields'
}

/** What `check --json` prints and POST /v1/checks answers. */
export type CheckResult = {
  /** No errors (warnings allowed). */
  valid: boolean
  /** Errors, in file order. */
  issues: Issue[]
  warnings: Issue[]
  /** The memory plan of the (first) config, when a model was known. */
  plan?: MemoryPlan
  /** What the check ran against. */
  context: {
    model?: string
    gpu?: string
    gpus?: number
    method?: TuningMethod
    seq?: number
    target: Target
    /** Per planned knob, where its value came from: a config key, or the runtime default used (codec decodeExplained). */
    sources?: Decoded['sources']
  }
}

/**
 * Checks a tuning config (YAML text or bytes) and, with a model and GPU, its memory fit.
 * Throws ExitError only for bad options (unknown model or GPU, bad seq or method).
 * @example await checkConfig(yaml, { model: 'phi-3-mini-128k-instruct', gpu: 'A10', seq: 2048 })
 */
export async function checkConfig(text: string | Uint8Array, opts: CheckOptions = {}): Promise<CheckResult> {
  const target = opts.target ?? 'local'
  // Option errors carry the neutral field as their path; the wording names what the caller typed.
  const n = (field: string) => (opts.names === 'fields' ? field : `--${field}`)
  if (target !== 'local' && target !== 'cluster') throw new ExitError(`${n('target')} is "${String(target)}": use local or cluster`, { path: 'target' })
  if (opts.method !== undefined && opts.method !== 'lora' && opts.method !== 'qlora') {
    throw new ExitError(`${n('method')} is "${String(opts.method)}": KAITO tunes with lora or qlora`, { path: 'method' })
  }
  if (opts.seq !== undefined && !(Number.isInteger(opts.seq) && opts.seq > 0)) {
    throw new ExitError(`${n('seq')} is ${String(opts.seq)}: give a whole number of tokens, e.g. ${opts.names === 'fields' ? '"seq": 2048' : '--seq 2048'}`, { path: 'seq' })
  }
  const flagModel = typeof opts.model === 'string' ? await loadModel(opts.model) : opts.model
  const flagHardware = typeof opts.gpu === 'string' ? findHardware(opts.gpu) : opts.gpu

  const tf = readTuningFile(text, { file: opts.file })
  const all: Issue[] = [...tf.issues]
  let plan: MemoryPlan | undefined
  let context: CheckResult['context'] = { target, model: flagModel?.name, gpu: flagHardware?.gpu.name, gpus: flagHardware?.count, method: opts.method, seq: opts.seq }
  for (const unit of tf.units) {
    if (!unit.raw) continue
    const ctx = unitContext(unit, opts, target, flagModel, flagHardware, all)
    const found = runRules(ctx)
    // Plan only a config whose fields are well-typed: the planner trusts its input.
    if (ctx.model && !found.some((i) => i.severity !== 'warning' && UNPLANNABLE.has(i.code))) {
      const planned = planUnit(ctx, opts.seq)
      if (planned.issue) found.push(planned.issue)
      if (planned.plan) {
        const full = { ...ctx, ...planned }
        found.push(...memoryFit(full), ...bestPractices(full).filter((i) => i.code !== 'rank_high'))
        if (!plan) {
          plan = planned.plan
          context = { ...context, model: ctx.model.name, gpu: ctx.hardware?.gpu.name, gpus: ctx.hardware?.count, method: ctx.method, seq: planned.planInput?.seq, sources: planned.sources }
        }
      }
    }
    all.push(...locateIssues(unit, found))
  }
  const { issues, warnings } = bySeverity(all)
  return { valid: issues.length === 0, issues, warnings, ...(plan ? { plan } : {}), context }
}

/** The rule context of one unit: flags win; a Workspace in the file fills the gaps. */
function unitContext(
  unit: TuningUnit,
  opts: CheckOptions,
  target: Target,
  flagModel: ModelArch | undefined,
  flagHardware: Hardware | undefined,
  all: Issue[],
): RuleContext {
  const ws = unit.workspace
  const outer = opts.file
  const method = opts.method ?? workspaceMethod(ws, outer, all)
  let model = flagModel
  const inferred: RuleContext['inferred'] = {}
  if (!model && ws?.preset) {
    // No network for a name the user did not type: the catalog or nothing.
    model = findModelSync(ws.preset)
    if (model) inferred.model = `the Workspace's tuning.preset.name ${ws.preset}`
    else all.push({ code: 'model_unknown', path: 'tuning.preset.name', severity: 'warning', file: outer, ...(ws.at.preset ?? {}), message: messages.modelUnknownInferred(ws.preset, 'Workspace') })
  }
  let hardware = flagHardware
  if (!hardware && ws?.instanceType) {
    try {
      hardware = findHardware(ws.instanceType)
      inferred.gpu = `the Workspace's resource.instanceType ${ws.instanceType}`
    } catch {
      all.push({ code: 'gpu_unknown', path: 'resource.instanceType', severity: 'warning', file: outer, ...(ws.at.instanceType ?? {}), message: messages.gpuUnknownInferred(ws.instanceType, 'Workspace') })
    }
  }
  return { config: unit.raw!, method, target, model, hardware, presetName: ws?.preset, inferred, seqFromFlag: opts.seq !== undefined, seqName: opts.names === 'fields' ? 'seq' : '--seq' }
}

function planUnit(
  ctx: RuleContext,
  seq: number | undefined,
): { plan?: MemoryPlan; planInput?: PlanInput; sources?: Decoded['sources']; planWith?: (p: Partial<PlanInput>) => MemoryPlan; issue?: Issue } {
  try {
    // check asks about a GPU: decode for cuda, on the file's target (cluster: KAITO's pod).
    const { input: planInput, sources } = decodeExplained(ctx.config, { model: ctx.model!, device: 'cuda', hardware: ctx.hardware ?? null, seq, target: ctx.target, presetName: ctx.presetName })
    const plan = planMemory(planInput)
    return { plan, planInput, sources, planWith: (patch) => planMemory({ ...planInput, ...patch }) }
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    return { issue: { code: 'plan_failed', path: 'training_config', severity: 'warning', message: `could not be planned (${message}): memory checks skipped` } }
  }
}
