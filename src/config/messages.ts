/**
 * Every message `check` prints, in one place and one tone: what is wrong, the value, what to
 * change. Issue paths are printed before these (`LoraConfig.r: ...`), so messages never
 * repeat the path.
 */
import { formatGiB } from '../units.ts'

export const SECTION_LIST = 'ModelConfig, QuantizationConfig, LoraConfig, TrainingArguments, DatasetConfig, DataCollator'

/** A value as the user wrote it, short enough for one line. */
export function show(value: unknown): string {
  if (value === null || value === undefined) return 'empty (null)'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (Array.isArray(value)) return `a list of ${value.length}`
  if (typeof value === 'object') return 'a map'
  return String(value)
}

/** What a value is, in words: "the string \"8\"", "a list", "true". */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)'
  if (typeof value === 'string') return `the string ${show(value)}`
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a map'
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  return `${typeof value} ${String(value)}`
}

const didYouMean = (s: string | undefined) => (s ? `did you mean ${s}?` : '')

export const messages = {
  invalidUtf8: () => 'is not valid UTF-8: save the file as UTF-8',
  yamlSyntax: (detail: string) => `is not valid YAML: ${detail}`,
  aliasBomb: (limit: number) =>
    `expands more than ${limit} YAML aliases: refused as a resource-exhaustion ("billion laughs") document; write the values out`,
  tooDeep: (limit: number) => `nests deeper than ${limit} levels: no tuning config needs that; flatten it`,
  helmTemplate: (expr: string) =>
    `is a Helm template expression (${expr}): checked as plain text; render it with \`helm template\` before \`kubectl apply\``,
  noTuningConfig: (found: string) =>
    `has no tuning config (${found}): give a ConfigMap with data["training_config.yaml"] or a bare document with a training_config: map`,
  inferenceConfigMap: () =>
    'holds inference_config.yaml, KAITO\'s inference settings, not a tuning config: ignored (headroom check reads training_config.yaml)',
  dataNotString: (got: unknown) =>
    `is ${describe(got)}; KAITO reads it as the text of a YAML document: write it as a block scalar (training_config.yaml: |)`,
  missingTrainingConfig: (got: unknown) =>
    `is ${describe(got)}; KAITO expects the 'training_config' key to contain a map of sections (${SECTION_LIST})`,
  extraTopLevelKey: () => 'is ignored: KAITO reads only training_config from this document',
  unknownSection: (name: string, suggestion?: string) =>
    `is not a KAITO section (the webhook rejects it: "Unrecognized section: ${name}"): ${suggestion ? didYouMean(suggestion) : `use one of ${SECTION_LIST}`}`,
  sectionNotMap: (got: unknown) => `is ${describe(got)}, not a map of fields: write it as key: value lines under the section`,
  emptySection: () => 'is empty (null): KAITO passes each section to its argument parser as a map; write {} or delete the line',
  unknownKey: (section: string, suggestion?: string) =>
    `is not a ${section} field (KAITO's argument parser rejects unknown keys)${suggestion ? `: ${didYouMean(suggestion)}` : ': delete it or check the spelling against docs/kaito-compat.md'}`,
  renamedKey: (to: string, why: string) => `${why}: rename it to ${to}`,
  removedKey: (what: string) => `is not accepted by the trainer: ${what}`,
  headroomOnly: (why: string) =>
    `is read by Headroom's runtime only; ${why} and its argument parser would reject it: delete it when the config goes to a KAITO cluster`,
  deprecated: (what: string) => `is ${what}`,
  invalidType: (expected: string, got: unknown) => `expected ${expected}, got ${describe(got)}: write ${expected}`,
  invalidEnum: (got: unknown, options: readonly unknown[], suggestion?: string) =>
    `is ${show(got)}; allowed: ${options.map((o) => String(o)).join(', ')}${suggestion ? ` (${didYouMean(suggestion)})` : ''}`,
  tooSmall: (got: unknown, bound: string) => `is ${show(got)}; it must be ${bound}`,
  tooBig: (got: unknown, bound: string) => `is ${show(got)}; it must be ${bound}`,
  emptyList: () => 'is an empty list: name at least one module, or write "all-linear"',
  quantFlagType: (flag: string, got: unknown) =>
    `is ${describe(got)}; KAITO's webhook requires a boolean or nothing ("value must be either nil or a boolean"): write ${flag}: true or ${flag}: false`,
  quantBoth: () =>
    "sets both load_in_4bit and load_in_8bit to true; KAITO's webhook rejects that: keep load_in_4bit: true (QLoRA) and set load_in_8bit: false",
  loraForbidsQuant: (flag: string) =>
    `is true, but method lora loads unquantized weights; KAITO's webhook rejects it: set ${flag}: false, or use --method qlora`,
  qloraNeedsQuant: (present: boolean) =>
    `${present ? 'sets neither load_in_4bit nor load_in_8bit' : 'is missing'}, but method qlora needs one; KAITO's webhook rejects it: set QuantizationConfig.load_in_4bit: true (with bnb_4bit_quant_type: nf4), or use --method lora`,
  outputDirNotString: (got: unknown) => `is ${describe(got)}; KAITO's webhook requires a string: write a directory such as "/mnt/results"`,
  outputDirEscapes: (dir: string, resolved: string) =>
    `is ${show(dir)}, which resolves to ${resolved}; KAITO needs a directory strictly under /mnt ("Invalid output_dir specified"): use e.g. "/mnt/results"`,
  outputDirJoined: (dir: string, resolved: string) =>
    `is ${show(dir)}; KAITO mounts the results volume at ${resolved} (it joins relative paths under /mnt): write "${resolved}" to say what happens`,
  nestedDict: (key: string) =>
    `is a map; KAITO flattens it into --${key}_<name> arguments, which its argument parser rejects: leave it out for a KAITO cluster`,
  dtypeMismatch: (torchDtype: string, compute: string) =>
    `is ${compute} but ModelConfig.torch_dtype is ${torchDtype}: the 4-bit layers compute in ${compute} while the rest runs in ${torchDtype}, which costs casts and can fail on dtype checks; set both to the same dtype (bfloat16 on GPUs that have it)`,
  computeDtypeDefault: () =>
    'is not set, so 4-bit layers compute in float32 (BitsAndBytesConfig\'s default): slower and larger temporaries; set bnb_4bit_compute_dtype: bfloat16 (float16 on GPUs without bf16)',
  precisionConflict: () => 'and fp16 are both true; transformers rejects that: keep one (bf16 where the GPU has it)',
  bf16Unsupported: (gpu: string, cc: string, where: string, quantized: boolean) =>
    `${where} bfloat16, but the ${gpu} (compute capability ${cc}) has no bfloat16: set ModelConfig.torch_dtype: float16${quantized ? ', QuantizationConfig.bnb_4bit_compute_dtype: float16' : ''} and TrainingArguments.fp16: true`,
  bf16Implicit: (gpu: string, cc: string) =>
    `is not set, and TRL's SFTConfig then turns bf16 on (unless fp16 is true); the ${gpu} (compute capability ${cc}) has no bfloat16, so transformers stops at start-up: set TrainingArguments.fp16: true`,
  bnb4bitIgnored: () => 'sets bnb_4bit_* options but load_in_4bit is not true: they are ignored; delete them or set load_in_4bit: true',
  targetsNoneMatch: (model: string, names: string[], suggest: string[], real: string[]) =>
    `${list(names)} match${names.length === 1 ? 'es' : ''} no module of ${model}; peft stops with "Target modules not found": ${suggest.length ? `use ${list(suggest)}` : `use some of ${list(real)}`} (its linear modules: ${real.join(', ')})`,
  targetsSomeUnmatched: (model: string, names: string[], suggest: string[], real: string[]) =>
    `${list(names)} match${names.length === 1 ? 'es' : ''} nothing in ${model}, so ${names.length === 1 ? 'it gets' : 'they get'} no adapter${suggest.length ? `: use ${list(suggest)}` : ''} (its linear modules: ${real.join(', ')})`,
  defaultTargetsUnmatched: (model: string, names: string[], matched: string[], suggest: string[]) =>
    `is not set, so KAITO's DEFAULT_TARGET_MODULES for phi-3 presets applies; ${list(names)} match nothing in ${model} and only ${list(matched)} get adapters: set target_modules: [${suggest.join(', ')}]`,
  seqBeyondContext: (seq: number, model: string, max: number) =>
    `is ${seq} tokens, beyond ${model}'s ${max}-token context: lower it to ${max} or less`,
  memoryExceeds: (need: number, gpu: string, have: number, fixes: string[]) =>
    `needs ${formatGiB(need)}, the ${gpu} has ${formatGiB(have)}: ${fixes.length ? alternatives(fixes) : 'no single change fits; use a GPU with more memory or a smaller model'}`,
  memoryInferred: (source: string) => ` (GPU taken from ${source}; pass --gpu to make this an error)`,
  rankHigh: (r: number) =>
    `is ${r}; ranks above 256 cost memory and time with little gain (KAITO's Phi-3 study: ranks 8-256 behave alike, 16384 was much slower): start with 8-64`,
  batchOne: (batch: number, peak: number, gpu: string) =>
    `is 1, but batch ${batch} fits the ${gpu} (peak ${formatGiB(peak)}); KAITO's Phi-3 study found batch 2-4 trains 2-3x faster: set per_device_train_batch_size: ${batch}`,
  modelUnknownInferred: (name: string, source: string) =>
    `names ${name}, which Headroom's catalog does not know: model checks (targets, memory) skipped; pass --model <preset | config.json>`,
  gpuUnknownInferred: (name: string, source: string) =>
    `is ${name}, which Headroom's catalog does not know: memory and bf16 checks skipped; pass --gpu`,
  defaultTemplate: (template: string, workspace: string) =>
    `uses KAITO's default ${template} (this file has no tuning ConfigMap${workspace ? ` for ${workspace}` : ''}): checked that template`,
  configMapElsewhere: (name: string) =>
    `names ConfigMap ${name}, which is not in this file: pass that file to headroom check too`,
  methodInvalid: (got: string) => `is ${show(got)}; KAITO accepts lora or qlora`,
} as const

function alternatives(fixes: string[]): string {
  if (fixes.length <= 2) return fixes.join(' or ')
  return `${fixes.slice(0, -1).join(', ')} or ${fixes[fixes.length - 1]}`
}

function list(names: string[]): string {
  if (names.length <= 1) return names.join('')
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
}
