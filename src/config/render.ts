/**
 * Writes a KAITO tuning ConfigMap from the planner's recommendation: the values are the codec's
 * encode of the recommended PlanInput (so decoding the file gives that input back), laid out in
 * KAITO's template order with a comment on every memory knob, and a header with the predicted
 * peak and headroom. Pure: returns the YAML text.
 */
import type { Hardware, ModelArch } from '../catalog/types.ts'
import type { MemoryPlan, PlanInput, Recommendation } from '../planner/types.ts'
import { formatBytes, formatCount, formatGiB } from '../units.ts'
import { encode, OPTIM_NAMES, TORCH_DTYPE_NAMES, type Sections } from './codec.ts'
import { LOSS_CHUNK_TOKENS } from '../planner/logits.ts'

export type RenderOptions = {
  model: ModelArch
  hardware: Hardware
  goal: string
  /** ConfigMap name; defaults to `<model>-tuning-params`. */
  name?: string
}

// KAITO's template order: sections, then the keys inside each (keys not listed follow in insertion order).
const LAYOUT: Record<string, string[]> = {
  ModelConfig: ['torch_dtype', 'local_files_only', 'device_map', 'attn_implementation'],
  QuantizationConfig: ['load_in_4bit', 'load_in_8bit', 'bnb_4bit_quant_type', 'bnb_4bit_compute_dtype', 'bnb_4bit_use_double_quant'],
  LoraConfig: ['r', 'lora_alpha', 'lora_dropout', 'target_modules'],
  TrainingArguments: ['output_dir', 'per_device_train_batch_size', 'gradient_accumulation_steps', 'max_length', 'gradient_checkpointing', 'optim', 'bf16', 'fp16', 'save_strategy', 'ddp_find_unused_parameters'],
  DataCollator: ['mlm'],
  DatasetConfig: ['shuffle_dataset', 'train_test_split'],
}

/** What init writes besides the memory knobs (encode fills those in). */
function baseSections(input: PlanInput, hardware: Hardware): Sections {
  // SFTConfig turns bf16 autocast on unless fp16 is set; a GPU without bf16 must say no explicitly.
  const precision: Record<string, boolean> =
    input.dtype === 'bf16' ? { bf16: true } : input.dtype === 'fp16' ? { fp16: true } : { bf16: false, ...(!hardware.gpu.bf16 ? { fp16: false } : {}) }
  return {
    ModelConfig: { local_files_only: true, device_map: 'auto' },
    QuantizationConfig: {},
    LoraConfig: {},
    TrainingArguments: { output_dir: '/mnt/results', gradient_accumulation_steps: 1, ...precision, save_strategy: 'no', ddp_find_unused_parameters: false },
    DataCollator: { mlm: false },
    DatasetConfig: { shuffle_dataset: true, train_test_split: 1 },
  }
}

/** The comment after `Section.key`, saying what the knob costs in this plan. */
function commentFor(key: string, input: PlanInput, plan: MemoryPlan): string | undefined {
  const b = plan.breakdown
  const dtype = TORCH_DTYPE_NAMES[input.dtype]
  switch (key) {
    case 'ModelConfig.torch_dtype':
      return 'memory: dtype of the unquantized weights and activations'
    case 'ModelConfig.attn_implementation':
      return 'memory: Headroom runtime only; KAITO rejects this key (remove it there)'
    case 'QuantizationConfig.load_in_4bit':
      return input.quant === 'nf4' || input.quant === 'fp4'
        ? `memory: 4-bit weights (${input.quant}); weights total ${formatBytes(b.weights)}`
        : `memory: ${dtype} weights, ${formatBytes(b.weights)}; true would quantize them to 4 bits`
    case 'QuantizationConfig.load_in_8bit':
      return `memory: int8 weights; weights total ${formatBytes(b.weights)}`
    case 'QuantizationConfig.bnb_4bit_compute_dtype':
      return `dequantized matmuls run in ${dtype}`
    case 'QuantizationConfig.bnb_4bit_use_double_quant':
      return `memory: ${input.doubleQuant ? 'quantizes the quantization constants too' : 'off'}`
    case 'LoraConfig.r':
      return `memory: adapters + their gradients and optimizer state, ${formatBytes(b.adapters + b.gradients + b.optimizer)}`
    case 'LoraConfig.lora_dropout':
      return input.loraDropout > 0
        ? 'memory: > 0 keeps a dropped copy of each adapted input and its mask (planned)'
        : 'memory: 0 keeps nothing extra; > 0 keeps a dropped copy of each adapted input and its mask'
    case 'LoraConfig.target_modules':
      return `memory: ${formatCount(plan.trainableParams)} trainable parameters (${plan.trainablePercent.toFixed(2)}%)`
    case 'TrainingArguments.per_device_train_batch_size':
      return `memory: activations ${formatBytes(b.activations)} and logits ${formatBytes(b.logits)} grow with it`
    case 'TrainingArguments.gradient_accumulation_steps':
      return 'raise for a larger effective batch at no memory cost'
    case 'TrainingArguments.max_length':
      return `memory: tokens per sequence; longer samples are truncated${plan.maxSeqLen ? ` (fits up to ${plan.maxSeqLen})` : ''}`
    case 'TrainingArguments.gradient_checkpointing':
      return `memory: ${input.gradientCheckpointing ? 'keeps one activation per layer, recomputes the rest' : 'keeps every activation (faster, larger)'}`
    case 'TrainingArguments.optim':
      return `memory: optimizer state ${formatBytes(b.optimizer)}`
    case 'TrainingArguments.loss_implementation':
      return `memory: the loss over ${LOSS_CHUNK_TOKENS} tokens at a time, not all logits at once; Headroom runtime only, KAITO rejects this key`
    case 'TrainingArguments.activation_offloading':
      return `memory: ${input.offloadActivations ? 'checkpointed block inputs in host memory, two blocks on the GPU' : 'checkpointed block inputs stay on the GPU'}`
    case 'TrainingArguments.packing':
      return 'no memory change: packs examples without padding (throughput)'
    case 'DataCollator.mlm':
      return 'causal LMs have no mask token'
    default:
      return undefined
  }
}

/**
 * The ConfigMap YAML for a recommendation.
 * @example renderTuningConfigMap(rec, { model, hardware, goal: 'max-context' })
 */
export function renderTuningConfigMap(rec: Recommendation, opts: RenderOptions): string {
  const { input, plan } = rec
  const b = plan.breakdown
  const gpu = opts.hardware.gpu
  const name = opts.name ?? `${dnsName(opts.model.name)}-tuning-params`
  const headroom = plan.headroomBytes ?? 0
  const gpus = opts.hardware.count > 1 ? `${opts.hardware.count}x ${gpu.name}` : gpu.name
  const sections = encode(input, baseSections(input, opts.hardware))

  const header = [
    `# Generated by headroom init for ${opts.model.name} on ${gpus} (goal ${opts.goal}).`,
    `# Predicted peak: ${formatGiB(plan.peakBytes)} per GPU of ${formatGiB(gpu.memoryBytes)}; headroom ${formatGiB(headroom)}.`,
    `#   weights ${formatBytes(b.weights)}, adapters ${formatBytes(b.adapters)}, gradients ${formatBytes(b.gradients)}, optimizer ${formatBytes(b.optimizer)},`,
    `#   activations ${formatBytes(b.activations)}, logits ${formatBytes(b.logits)}, overhead ${formatBytes(b.overhead)}.`,
    `# Planned as: ${describeInput(input)}; peak ${formatCount(plan.peakBytes)} bytes.`,
    ...rec.reasons.map((r) => `# why ${r.knob}: ${oneLine(r.message)}`),
    ...Object.entries(rec.env).map(([k, v]) => `# run with ${k}=${v} (KAITO sets it on tuning pods)`),
    `# Re-check after editing: headroom check <this file> --model ${opts.model.name} --gpu ${opts.hardware.sku ?? gpu.name}`,
  ]
  const body = ['training_config:']
  for (const [sectionName, order] of Object.entries(LAYOUT)) {
    const section = sections[sectionName] ?? {}
    const keys = [...order.filter((k) => k in section), ...Object.keys(section).filter((k) => !order.includes(k))]
    body.push(`  ${sectionName}:`)
    for (const key of keys) {
      const comment = commentFor(`${sectionName}.${key}`, input, plan)
      body.push(`    ${key}: ${yamlValue(section[key])}${comment ? ` # ${comment}` : ''}`)
    }
    body.push('')
  }
  body.pop()
  return [
    ...header,
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    `  name: ${name}`,
    'data:',
    '  training_config.yaml: |',
    ...body.map((l) => (l ? `    ${alignComment(l)}` : '')),
    '',
  ].join('\n')
}

/** One line naming every decoded knob, e.g. `qlora nf4 + double quant, bf16, r 8 ...`. */
export function describeInput(input: PlanInput): string {
  const quant = input.quant === 'none' ? '' : ` ${input.quant}${input.doubleQuant ? ' + double quant' : ''}`
  const targets = input.targets === 'all-linear' ? 'all-linear' : input.targets.join(',')
  return [
    `${input.method}${quant}`,
    input.dtype,
    ...(input.method === 'full' ? [] : [`r ${input.rank}`, `alpha ${input.alpha}`, `targets ${targets}`]),
    `batch ${input.batch}`,
    `max_length ${input.seq}`,
    `gradient checkpointing ${input.gradientCheckpointing ? 'on' : 'off'}`,
    `attention ${input.attention}`,
    `optim ${OPTIM_NAMES[input.optimizer]}`,
    // The levers are named when on, so a description of a plan without them reads as before.
    ...(input.loss === 'chunked' ? ['chunked loss'] : []),
    ...(input.offloadActivations ? ['activation offloading'] : []),
    ...(input.packing ? ['packing'] : []),
  ].join(', ')
}

function yamlValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`
  return String(v)
}

/** Lines up trailing `# ...` comments in one column, as KAITO's own example does. */
function alignComment(line: string): string {
  const m = /^(.*?\S)\s+(# .*)$/.exec(line)
  if (!m || line.trimStart().startsWith('#')) return line
  return `${m[1].padEnd(COMMENT_COLUMN)} ${m[2]}`
}

const COMMENT_COLUMN = 44

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim()
}

/** A DNS-1123 name from a model id (`microsoft/Phi-3` -> `microsoft-phi-3`). */
function dnsName(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'model'
}
