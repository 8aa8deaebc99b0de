/**
 * Named rules over one training_config. Each rule is a pure function of a RuleContext that
 * returns issues (path relative to training_config, no positions; `locateIssues` adds them).
 * KAITO's own webhook rules come first, then Headroom's: schema, compatibility, precision,
 * hardware, target modules, memory and best practices.
 */
import type { z } from 'zod'
import type { Issue } from '../errors.ts'
import type { Hardware, ModelArch } from '../catalog/types.ts'
import { KAITO_PHI3_TARGETS } from '../catalog/lora-defaults.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'
import { describe, messages } from './messages.ts'
import {
  DEPRECATED_FIELDS,
  HEADROOM_ONLY_FIELDS,
  REMOVED_FIELDS,
  RENAMED_FIELDS,
  SECTION_NAMES,
  SECTION_SCHEMAS,
  sectionFields,
  type SectionName,
} from './schema.ts'
import { closest } from './suggest.ts'

/** Where a checked config will run: `cluster` adds KAITO's rules for a Workspace (output_dir under /mnt). */
export const CHECK_TARGETS = ['local', 'cluster'] as const
export type Target = (typeof CHECK_TARGETS)[number]
/** KAITO's tuning methods (Workspace.tuning.method): what check, render and submit take as --method / method. */
export const TUNING_METHODS = ['lora', 'qlora'] as const
export type TuningMethod = (typeof TUNING_METHODS)[number]

export type RuleContext = {
  /** The training_config map as written. */
  config: Record<string, unknown>
  /** lora or qlora, from --method or the Workspace; KAITO's quantization rules need it. */
  method?: TuningMethod
  /** cluster: the config goes to KAITO (webhook rules on output_dir, no Headroom-only fields). */
  target: Target
  model?: ModelArch
  /** KAITO's preset name (decides DEFAULT_TARGET_MODULES); the model's name when absent. */
  presetName?: string
  hardware?: Hardware
  /** Where model and GPU came from: a Workspace in the file makes their findings warnings. */
  inferred?: { model?: string; gpu?: string }
  /** The plan of this config on the GPU, and a way to plan variations of it. */
  planInput?: PlanInput
  plan?: MemoryPlan
  planWith?: (patch: Partial<PlanInput>) => MemoryPlan
  /** Sequence length the plan used and whether --seq set it. */
  seq?: number
  seqFromFlag?: boolean
  /** How the caller named the sequence override: `--seq` (CLI) or `seq` (JSON). */
  seqName?: string
}

export type Rule = (ctx: RuleContext) => Issue[]

const err = (code: string, path: string, message: string): Issue => ({ code, path, message, severity: 'error' })
const warn = (code: string, path: string, message: string): Issue => ({ code, path, message, severity: 'warning' })

type Section = Record<string, unknown>

/** A known section as a map, or undefined when absent or not a map. */
function section(ctx: RuleContext, name: SectionName): Section | undefined {
  const s = ctx.config[name]
  return s && typeof s === 'object' && !Array.isArray(s) ? (s as Section) : undefined
}

function field(ctx: RuleContext, name: SectionName, key: string): unknown {
  return section(ctx, name)?.[key]
}

// ---------------------------------------------------------------- KAITO's webhook rules

/** Only KAITO's six sections, each a map (webhook: "Unrecognized section"). */
export const knownSections: Rule = (ctx) => {
  const out: Issue[] = []
  for (const [name, value] of Object.entries(ctx.config)) {
    if (!(SECTION_NAMES as string[]).includes(name)) {
      out.push(err('unknown_section', name, messages.unknownSection(name, closest(name, SECTION_NAMES))))
    } else if (value === null || value === undefined) {
      out.push(warn('empty_section', name, messages.emptySection()))
    } else if (typeof value !== 'object' || Array.isArray(value)) {
      out.push(err('invalid_type', name, messages.sectionNotMap(value)))
    }
  }
  return out
}

const QUANT_FLAGS = ['load_in_4bit', 'load_in_8bit'] as const

/** The quantization flags against the method (webhook validateMethodViaConfigMap). */
export const quantizationFlags: Rule = (ctx) => {
  const out: Issue[] = []
  const q = section(ctx, 'QuantizationConfig')
  const on: string[] = []
  for (const flag of QUANT_FLAGS) {
    const v = q?.[flag]
    if (v === undefined) continue
    if (typeof v !== 'boolean') out.push(err('invalid_type', `QuantizationConfig.${flag}`, messages.quantFlagType(flag, v)))
    else if (v) on.push(flag)
  }
  if (on.length === 2) out.push(err('quantization_conflict', 'QuantizationConfig', messages.quantBoth()))
  if (ctx.method === 'lora') {
    for (const flag of on) out.push(err('lora_forbids_quantization', `QuantizationConfig.${flag}`, messages.loraForbidsQuant(flag)))
  }
  if (ctx.method === 'qlora' && on.length === 0) {
    out.push(err('qlora_needs_quantization', 'QuantizationConfig', messages.qloraNeedsQuant(q !== undefined)))
  }
  return out
}

/** output_dir must stay strictly under /mnt on a KAITO cluster (webhook + PrepareOutputDir). */
export const outputDir: Rule = (ctx) => {
  const dir = field(ctx, 'TrainingArguments', 'output_dir')
  if (dir === undefined) return []
  const path = 'TrainingArguments.output_dir'
  if (typeof dir !== 'string') return [err('invalid_type', path, messages.outputDirNotString(dir))]
  if (ctx.target !== 'cluster') return []
  // The webhook joins every path under /mnt; the controller keeps paths that already start
  // with /mnt. Both must land strictly below /mnt.
  const webhook = cleanPosix(`/mnt/${dir}`)
  const resolved = dir.startsWith('/mnt') ? cleanPosix(dir) : webhook
  for (const r of [webhook, resolved]) {
    if (r === '/mnt' || !r.startsWith('/mnt/')) return [err('output_dir_outside_mnt', path, messages.outputDirEscapes(dir, r))]
  }
  if (!dir.startsWith('/mnt/')) return [warn('output_dir_joined', path, messages.outputDirJoined(dir, resolved))]
  return []
}

/** Go's filepath.Clean for absolute POSIX paths. */
function cleanPosix(p: string): string {
  const parts: string[] = []
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue
    if (seg === '..') parts.pop()
    else parts.push(seg)
  }
  return `/${parts.join('/')}`
}

// ---------------------------------------------------------------- schema: keys, types, ranges

/** Unknown keys (with "did you mean"), types, ranges and enums, per section, through zod. */
export const schemaFields: Rule = (ctx) => {
  const out: Issue[] = []
  for (const name of SECTION_NAMES) {
    const s = section(ctx, name)
    if (!s) continue
    const result = SECTION_SCHEMAS[name].safeParse(s)
    if (result.success) continue
    for (const issue of result.error.issues) out.push(...fromZod(name, s, issue))
  }
  return out
}

/** Describes what a field accepts, for union types where zod only says "invalid input". */
const UNION_EXPECTED: Record<string, string> = {
  'LoraConfig.target_modules': 'a list of module names, a regex string, or "all-linear"',
  'LoraConfig.init_lora_weights': 'true, false, or a method name such as "gaussian" or "pissa"',
  'LoraConfig.layers_to_transform': 'a layer index or a list of layer indices',
  'ModelConfig.device_map': 'a string such as "auto" or a map of module to device',
  'TrainingArguments.report_to': 'a string or a list of strings',
  'TrainingArguments.include_num_input_tokens_seen': 'true, false, "all", "non_padding" or "no"',
}

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a map',
  record: 'a map',
  tuple: 'a pair of numbers',
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let v = root
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[k as string]
  }
  return v
}

function joinPath(section: string, path: PropertyKey[]): string {
  let out = section
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : `.${String(k)}`
  return out
}

function fromZod(name: SectionName, s: Section, issue: z.core.$ZodIssue): Issue[] {
  const path = joinPath(name, issue.path)
  const got = valueAt(s, issue.path)
  // The quantization flags get KAITO's own wording from quantizationFlags.
  if (issue.path.length === 1 && (QUANT_FLAGS as readonly string[]).includes(String(issue.path[0]))) return []
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const keyPath = joinPath(name, [...issue.path, key])
        const renamed = RENAMED_FIELDS[keyPath]
        if (renamed) return err('renamed_key', keyPath, messages.renamedKey(renamed.to, renamed.why))
        const removed = REMOVED_FIELDS[keyPath]
        if (removed) return err('removed_key', keyPath, messages.removedKey(removed))
        const candidates = issue.path.length ? [] : sectionFields(name)
        return err('unknown_key', keyPath, messages.unknownKey(name, closest(key, candidates)))
      })
    case 'invalid_type': {
      if (got === undefined && issue.path.length > 1) return [err('invalid_type', path, messages.invalidType(TYPE_WORDS[issue.expected] ?? issue.expected, got))]
      return [err('invalid_type', path, messages.invalidType(TYPE_WORDS[issue.expected] ?? issue.expected, got))]
    }
    case 'invalid_union': {
      // A list whose items are wrong: report the items, not the whole field.
      if (Array.isArray(got)) {
        const branch = issue.errors.find((b) => b.length && b.every((i) => i.path.length > 0))
        if (branch) return branch.flatMap((i) => fromZod(name, s, { ...i, path: [...issue.path, ...i.path] } as z.core.$ZodIssue))
      }
      return [err('invalid_type', path, messages.invalidType(UNION_EXPECTED[path] ?? 'a value of another type', got))]
    }
    case 'invalid_value': {
      const options = issue.values.map((v) => String(v))
      const suggestion = typeof got === 'string' ? closest(got, options) : undefined
      return [err('invalid_value', path, messages.invalidEnum(got, options, suggestion))]
    }
    case 'too_small': {
      if (issue.origin === 'array') return [err('out_of_range', path, messages.emptyList())]
      const bound = issue.inclusive ? `at least ${issue.minimum}` : `greater than ${issue.minimum}`
      return [err('out_of_range', path, messages.tooSmall(got, bound))]
    }
    case 'too_big': {
      const bound = issue.inclusive ? `at most ${issue.maximum}` : `less than ${issue.maximum}`
      return [err('out_of_range', path, messages.tooBig(got, bound))]
    }
    default:
      return [err('invalid_value', path, `is ${describe(got)}: ${issue.message}`)]
  }
}

// ---------------------------------------------------------------- compatibility

/** Deprecated, Headroom-only and nested-map fields, by target (renamed and removed keys are schema errors). */
export const compatibility: Rule = (ctx) => {
  const out: Issue[] = []
  for (const name of SECTION_NAMES) {
    const s = section(ctx, name)
    if (!s) continue
    for (const [key, value] of Object.entries(s)) {
      const path = `${name}.${key}`
      if (HEADROOM_ONLY_FIELDS[path] && ctx.target === 'cluster') {
        out.push(err('kaito_unsupported_field', path, messages.headroomOnly(HEADROOM_ONLY_FIELDS[path])))
      }
      if (DEPRECATED_FIELDS[path]) out.push(warn('deprecated_field', path, messages.deprecated(DEPRECATED_FIELDS[path])))
      if (
        ctx.target === 'cluster' &&
        value &&
        typeof value === 'object' &&
        !Array.isArray(value) &&
        Object.keys(value).length > 0
      ) {
        out.push(warn('nested_map', path, messages.nestedDict(key)))
      }
    }
  }
  return out
}

// ---------------------------------------------------------------- precision

const DTYPE_CANON: Record<string, string> = { float: 'float32', half: 'float16', double: 'float64' }
const canon = (d: unknown) => (typeof d === 'string' ? (DTYPE_CANON[d] ?? d) : undefined)

/** Conflicting or wasteful precision settings. */
export const precision: Rule = (ctx) => {
  const out: Issue[] = []
  const ta = section(ctx, 'TrainingArguments')
  if (ta?.bf16 === true && ta?.fp16 === true) out.push(err('precision_conflict', 'TrainingArguments.bf16', messages.precisionConflict()))
  const q = section(ctx, 'QuantizationConfig')
  const torchDtype = canon(field(ctx, 'ModelConfig', 'torch_dtype'))
  const compute = canon(q?.bnb_4bit_compute_dtype)
  if (q?.load_in_4bit === true) {
    if (compute === undefined) out.push(warn('compute_dtype_default', 'QuantizationConfig.bnb_4bit_compute_dtype', messages.computeDtypeDefault()))
    else if (torchDtype && torchDtype !== compute) {
      out.push(warn('dtype_mismatch', 'QuantizationConfig.bnb_4bit_compute_dtype', messages.dtypeMismatch(torchDtype, compute)))
    }
  } else if (q && Object.keys(q).some((k) => k.startsWith('bnb_4bit_'))) {
    out.push(warn('bnb_4bit_ignored', 'QuantizationConfig', messages.bnb4bitIgnored()))
  }
  return out
}

/** bfloat16 asked of a GPU that has none (T4, V100): transformers stops at start-up. */
export const gpuPrecision: Rule = (ctx) => {
  const gpu = ctx.hardware?.gpu
  if (!gpu || gpu.bf16) return []
  const out: Issue[] = []
  const severe = ctx.inferred?.gpu ? warn : err
  const ta = section(ctx, 'TrainingArguments')
  const name = gpu.name
  const cc = gpu.computeCapability
  const q4 = field(ctx, 'QuantizationConfig', 'load_in_4bit') === true
  if (ta?.bf16 === true) out.push(severe('bf16_unsupported', 'TrainingArguments.bf16', messages.bf16Unsupported(name, cc, 'is true: asks for', q4)))
  else if (ta?.bf16 === undefined && ta?.fp16 !== true && !ta?.use_cpu) {
    out.push(severe('bf16_unsupported', 'TrainingArguments.bf16', messages.bf16Implicit(name, cc)))
  }
  if (canon(field(ctx, 'ModelConfig', 'torch_dtype')) === 'bfloat16') {
    out.push(warn('bf16_unsupported', 'ModelConfig.torch_dtype', messages.bf16Unsupported(name, cc, 'is', q4)))
  }
  if (q4 && canon(field(ctx, 'QuantizationConfig', 'bnb_4bit_compute_dtype')) === 'bfloat16') {
    out.push(warn('bf16_unsupported', 'QuantizationConfig.bnb_4bit_compute_dtype', messages.bf16Unsupported(name, cc, 'is', q4)))
  }
  return out
}

// ---------------------------------------------------------------- target modules

/** Fused and split spellings of the same projections, for suggestions across families. */
const FUSED: Record<string, string[]> = { qkv_proj: ['q_proj', 'k_proj', 'v_proj'], gate_up_proj: ['gate_proj', 'up_proj'] }

/** Every Linear leaf name of the model that peft can target. */
export function moduleNames(model: ModelArch): string[] {
  return [...new Set([...model.layerLinears.map((m) => m.name), 'lm_head'])]
}

/** The real names to use instead of names that match nothing. */
export function suggestTargets(unmatched: string[], real: string[]): string[] {
  const out = new Set<string>()
  for (const name of unmatched) {
    const fused = Object.entries(FUSED).find(([f, parts]) => parts.includes(name) && real.includes(f))
    if (fused) {
      out.add(fused[0])
      continue
    }
    const parts = FUSED[name]?.filter((p) => real.includes(p))
    if (parts?.length) {
      parts.forEach((p) => out.add(p))
      continue
    }
    const near = closest(name, real)
    if (near) out.add(near)
  }
  return [...out]
}

/** Does one target_modules entry match a module? peft: exact name or a `.name` suffix. */
function matchesName(entry: string, real: string[]): boolean {
  const leaf = entry.split('.').pop() ?? entry
  return real.includes(leaf)
}

/** target_modules against the model's real module names (peft stops when none match). */
export const targetModules: Rule = (ctx) => {
  const model = ctx.model
  if (!model) return []
  const real = moduleNames(model)
  const path = 'LoraConfig.target_modules'
  const targets = field(ctx, 'LoraConfig', 'target_modules')
  const severe = ctx.inferred?.model ? warn : err
  if (Array.isArray(targets) && targets.every((t) => typeof t === 'string') && targets.length) {
    const names = targets as string[]
    const unmatched = names.filter((t) => !matchesName(t, real))
    if (!unmatched.length) return []
    const suggest = suggestTargets(unmatched, real).filter((s) => !names.includes(s))
    if (unmatched.length === names.length) {
      return [severe('target_modules_unmatched', path, messages.targetsNoneMatch(model.name, unmatched, suggest, real))]
    }
    return [warn('target_modules_unmatched', path, messages.targetsSomeUnmatched(model.name, unmatched, suggest, real))]
  }
  if (typeof targets === 'string' && targets !== 'all-linear') {
    let re: RegExp
    try {
      re = new RegExp(`^(?:${targets})$`)
    } catch {
      return [err('invalid_value', path, `is ${JSON.stringify(targets)}, which is not a valid regular expression: write a list of module names instead`)]
    }
    // peft full-matches a regex against dotted module paths; try the usual parents.
    const hit = real.some((n) => [n, `model.layers.0.self_attn.${n}`, `model.layers.0.mlp.${n}`].some((full) => re.test(full)))
    if (!hit) return [severe('target_modules_unmatched', path, messages.targetsNoneMatch(model.name, [targets], [], real))]
    return []
  }
  // With no target_modules, KAITO (and Headroom's trainer) use KAITO's Phi-3 list, locally too.
  if (targets === undefined && model.modelType === 'phi3') {
    const unmatched = KAITO_PHI3_TARGETS.filter((t) => !real.includes(t))
    const matched = KAITO_PHI3_TARGETS.filter((t) => real.includes(t))
    if (unmatched.length) {
      const suggest = [...new Set([...suggestTargets(unmatched, real), ...matched])]
      return [warn('target_modules_unmatched', path, messages.defaultTargetsUnmatched(model.name, unmatched, matched, suggest))]
    }
  }
  return []
}

/** Sequence length beyond the model's context. */
export const sequenceLength: Rule = (ctx) => {
  const model = ctx.model
  if (!model) return []
  const ta = section(ctx, 'TrainingArguments')
  const key = ta?.max_length !== undefined ? 'max_length' : ta?.max_seq_length !== undefined ? 'max_seq_length' : undefined
  const seq = key ? ta?.[key] : undefined
  if (typeof seq !== 'number' || seq <= model.maxPositionEmbeddings) return []
  return [warn('seq_beyond_context', `TrainingArguments.${key}`, messages.seqBeyondContext(seq, model.name, model.maxPositionEmbeddings))]
}

// ---------------------------------------------------------------- memory

/** One change to the config that makes the plan fit: the key it sets and the sentence saying so. */
export type MemoryFix = { path: string; text: string }
type Fix = MemoryFix

/**
 * The changes, each named by its config key, that make a plan that does not fit fit the GPU
 * (empty when it fits or nothing single does). check's memory rule and render's admission
 * (k8s/admission.ts) both state these.
 */
export function memoryFixes(ctx: RuleContext): MemoryFix[] {
  const { plan, planWith } = ctx
  if (!plan || !planWith || plan.fits !== false || !plan.gpu) return []
  const input = ctx.planInput
  const fixes: Fix[] = []
  const tryFix = (patch: Partial<PlanInput>, fix: Fix) => {
    try {
      if (planWith(patch).fits) fixes.push(fix)
    } catch {
      // A variation the planner refuses is simply not offered.
    }
  }
  if (input && input.quant === 'none') {
    tryFix({ quant: 'nf4', method: 'qlora', doubleQuant: true }, {
      path: 'QuantizationConfig.load_in_4bit',
      text: 'set QuantizationConfig.load_in_4bit: true (bnb_4bit_quant_type: nf4)',
    })
  }
  if (input && input.batch > 1) {
    for (let b = input.batch - 1; b >= 1; b--) {
      let fits = false
      try {
        fits = planWith({ batch: b }).fits === true
      } catch {
        fits = false
      }
      if (fits) {
        fixes.push({ path: 'TrainingArguments.per_device_train_batch_size', text: `lower TrainingArguments.per_device_train_batch_size to ${b}` })
        break
      }
    }
  }
  if (input && !input.gradientCheckpointing) {
    tryFix({ gradientCheckpointing: true }, { path: 'TrainingArguments.gradient_checkpointing', text: 'set TrainingArguments.gradient_checkpointing: true' })
  }
  // No single knob is enough: the cheapest combination that fits, stated as one fix.
  if (input && !fixes.length) {
    const combo: Partial<PlanInput> = { gradientCheckpointing: true, batch: 1 }
    const parts = ['TrainingArguments.gradient_checkpointing: true', 'per_device_train_batch_size: 1']
    if (input.quant === 'none') {
      Object.assign(combo, { quant: 'nf4', method: 'qlora', doubleQuant: true })
      parts.unshift('QuantizationConfig.load_in_4bit: true')
    }
    const changed = input.quant === 'none' || !input.gradientCheckpointing || input.batch > 1
    let fits = false
    try {
      fits = changed && planWith(combo).fits === true
    } catch {
      fits = false
    }
    if (fits) fixes.push({ path: parts[0].includes('Quantization') ? 'QuantizationConfig.load_in_4bit' : 'TrainingArguments.gradient_checkpointing', text: `set ${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]} together` })
  }
  if (plan.maxSeqLen && input && plan.maxSeqLen < input.seq && plan.maxSeqLen >= 128) {
    const knob = ctx.seqFromFlag ? (ctx.seqName ?? '--seq') : 'TrainingArguments.max_length'
    fixes.push({ path: 'TrainingArguments.max_length', text: `lower ${knob} to ${plan.maxSeqLen}` })
  }
  return fixes
}

/** The plan must fit the GPU; the message names the knobs that would make it fit. */
export const memoryFit: Rule = (ctx) => {
  const { plan, planWith, hardware } = ctx
  if (!plan || !planWith || !hardware || plan.fits !== false || !plan.gpu) return []
  const fixes = memoryFixes(ctx)
  const path = fixes[0]?.path ?? 'TrainingArguments.per_device_train_batch_size'
  let message = messages.memoryExceeds(plan.peakBytes, plan.gpu.name, plan.gpu.memoryBytes, fixes.map((f) => f.text))
  if (ctx.inferred?.gpu) message += messages.memoryInferred(ctx.inferred.gpu)
  return [(ctx.inferred?.gpu ? warn : err)('memory_exceeds_gpu', path, message)]
}

// ---------------------------------------------------------------- best practices

/** The seed's best practices (KAITO's Phi-3 study), as warnings. */
export const bestPractices: Rule = (ctx) => {
  const out: Issue[] = []
  const r = field(ctx, 'LoraConfig', 'r')
  if (typeof r === 'number' && r > 256) out.push(warn('rank_high', 'LoraConfig.r', messages.rankHigh(r)))
  const input = ctx.planInput
  if (ctx.plan?.fits && ctx.planWith && ctx.plan.gpu && input?.batch === 1) {
    let best: MemoryPlan | undefined
    let bestBatch = 1
    for (const b of [2, 4]) {
      try {
        const p = ctx.planWith({ batch: b })
        if (p.fits) {
          best = p
          bestBatch = b
        }
      } catch {
        break
      }
    }
    if (best) out.push(warn('batch_one', 'TrainingArguments.per_device_train_batch_size', messages.batchOne(bestBatch, best.peakBytes, ctx.plan.gpu.name)))
  }
  return out
}

/** Every rule, in the order issues are reported. */
export const RULES: Record<string, Rule> = {
  knownSections,
  quantizationFlags,
  outputDir,
  schemaFields,
  compatibility,
  precision,
  gpuPrecision,
  targetModules,
  sequenceLength,
  memoryFit,
  bestPractices,
}

/** Runs every rule; a rule that throws on a strange value becomes one issue, never a crash. */
export function runRules(ctx: RuleContext): Issue[] {
  const out: Issue[] = []
  for (const [name, rule] of Object.entries(RULES)) {
    try {
      out.push(...rule(ctx))
    } catch (e) {
      out.push(err('rule_failed', 'training_config', `could not be checked by rule ${name} (${e instanceof Error ? e.message : String(e)}): a bug in Headroom; please report it`))
    }
  }
  return out
}
