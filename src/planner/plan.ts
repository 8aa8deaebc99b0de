/**
 * planMemory: the MemoryPlan of DESIGN.md §2.1 for one fully resolved input. Pure and
 * synchronous; the CLI, the HTTP API and the fit search all go through here.
 */
import { formatGiB } from '../units.ts'
import { fieldName, fieldSetting, type FieldNames } from './fields.ts'
import type { MemoryPlan, PlanInput, PlanWarning } from './types.ts'
import { maxSeqLen } from './fit.ts'
import { inferenceMaxSeqLen, inferenceTerms } from './inference.ts'
import { memoryTerms, type MemoryTerms } from './peak.ts'
import { unmatchedMessage } from './targets.ts'
import { usableMemoryBytes } from './overhead.ts'

/**
 * Predicts peak device memory per component, trainable parameters, and what fits on input.gpu.
 * @example planMemory(input).peakBytes / 1e9 // ≈5.3 for the seed case: Phi-3-mini QLoRA at 2,048 tokens
 */
export function planMemory(input: PlanInput): MemoryPlan {
  const t = termsOf(input)
  const arch = input.model
  const gpu = input.gpu
  const usable = gpu ? usableMemoryBytes(gpu) : null
  const fits = usable !== null ? t.peakBytes <= usable : null
  const headroomBytes = usable !== null ? usable - t.peakBytes : null
  const base = arch.params
  return {
    model: { name: arch.name, params: base },
    phase: input.phase,
    device: input.device,
    peakBytes: t.peakBytes,
    peakAllocatedBytes: t.peakAllocatedBytes,
    breakdown: t.breakdown,
    trainableParams: t.trainableParams,
    // peft print_trainable_parameters: 100 * trainable / all parameters (adapters included).
    trainablePercent: input.method === 'full' ? 100 : (100 * t.trainableParams) / (base + t.trainableParams),
    matchedTargets: input.method === 'full' ? [] : t.match.matched,
    unmatchedTargets: input.method === 'full' ? [] : t.match.unmatched,
    gpu: gpu ? { name: gpu.name, memoryBytes: gpu.memoryBytes } : null,
    fits,
    headroomBytes,
    maxSeqLen: gpu ? (input.phase === 'inference' ? inferenceMaxSeqLen(input) : maxSeqLen(input)) : null,
    warnings: warningsFor(input, t, 'fields'),
    ...(input.overhead ? { calibratedBy: input.overhead.profile } : {}),
  }
}

/**
 * The plan's warnings with fields named for an edge: planMemory's JSON names them as JSON
 * fields (the same for `plan --json` and `POST /v1/plans`); the CLI's report names flags.
 * @example planWarnings({ ...input, gpu: t4 }, 'flags')[0].message // "... use --dtype fp16"
 */
export function planWarnings(input: PlanInput, names: FieldNames): PlanWarning[] {
  return warningsFor(input, termsOf(input), names)
}

/** What the warnings and the plan read from the terms of either phase. */
type Terms = Pick<MemoryTerms, 'shape' | 'match' | 'trainableParams' | 'breakdown' | 'peakBytes' | 'peakAllocatedBytes'>

// Inference (generate's prefill and KV cache) has its own terms; load and train share peak.ts.
function termsOf(input: PlanInput): Terms {
  return input.phase === 'inference' ? inferenceTerms(input) : memoryTerms(input)
}

function warningsFor(input: PlanInput, t: Terms, names: FieldNames): PlanWarning[] {
  const set = (field: string, value: unknown) => fieldSetting(field, value, names)
  const name = (field: string) => fieldName(field, names)
  const warnings: PlanWarning[] = []
  const arch = input.model
  const gpu = input.gpu
  if (input.method !== 'full' && t.match.unmatched.length > 0) {
    warnings.push({ code: 'target_unmatched', message: unmatchedMessage(t.shape, t.match.unmatched, arch.name, names) })
  }
  if (input.method !== 'full' && t.trainableParams === 0) {
    warnings.push({
      code: 'no_target_matched',
      message: `no LoRA target matches a module of ${arch.name}, so peft would refuse to start ("Target modules ... not found"): use ${set('targets', 'all-linear')}`,
    })
  }
  if (input.phase !== 'load' && input.seq > arch.maxPositionEmbeddings) {
    warnings.push({
      code: 'seq_beyond_model',
      message: `${set('seq', input.seq)} is longer than ${arch.name}'s max_position_embeddings ${arch.maxPositionEmbeddings}: lower ${name('seq')}`,
    })
  }
  if (gpu && input.device === 'cuda' && input.dtype === 'bf16' && !gpu.bf16) {
    warnings.push({
      code: 'bf16_unsupported',
      message: `the ${gpu.name} (compute capability ${gpu.computeCapability}) has no native bfloat16: use ${set('dtype', 'fp16')}`,
    })
  }
  if (gpu && input.attention === 'flash' && Number(gpu.computeCapability) < 8) {
    warnings.push({
      code: 'flash_unsupported',
      message: `flash_attention_2 needs compute capability 8.0 or newer and the ${gpu.name} has ${gpu.computeCapability}: use ${set('attention', 'sdpa')}`,
    })
  }
  // The offloaded checkpoint moves the block inputs checkpointing saves, to host memory over PCIe (peak.ts).
  if (input.offloadActivations && input.phase === 'train' && input.device === 'cpu') {
    warnings.push({
      code: 'offload_no_effect',
      message: `${set('offloadActivations', true)} has no effect with ${set('device', 'cpu')}: the activations are in host memory already (the trainer accepts it as a no-op)`,
    })
  } else if (input.offloadActivations && input.phase === 'train' && !input.gradientCheckpointing) {
    warnings.push({
      code: 'offload_no_effect',
      message: `${set('offloadActivations', true)} offloads the checkpointed block inputs, and ${set('gradientCheckpointing', false)} saves none: it has no effect here; use ${set('gradientCheckpointing', true)}`,
    })
  }
  if (gpu && t.peakBytes > usableMemoryBytes(gpu)) {
    warnings.push({ code: 'does_not_fit', message: doesNotFit(input, t.peakBytes, names) })
  }
  return warnings
}

function doesNotFit(input: PlanInput, peakBytes: number, names: FieldNames): string {
  const set = (field: string, value: unknown) => fieldSetting(field, value, names)
  const gpu = input.gpu!
  const need = `needs ${formatGiB(peakBytes)}, the ${gpu.name} has ${formatGiB(usableMemoryBytes(gpu))} usable`
  if (input.phase === 'load') return `${need}: use ${set('quant', 'nf4')} or a larger GPU`
  if (input.phase === 'inference') {
    const serve: string[] = []
    if (input.quant === 'none' && input.method !== 'full') serve.push(`${set('method', 'qlora')} ${names === 'flags' ? '' : 'and '}${set('quant', 'nf4')}`)
    if (input.attention === 'eager') serve.push(set('attention', 'sdpa'))
    serve.push(input.batch > 1 ? `fewer concurrent sequences (a lower ${fieldName('batch', names)})` : `a lower ${fieldName('seq', names)}`)
    return `${need}: use ${serve.join(', or ')}`
  }
  const fixes: string[] = []
  if (input.quant === 'none' && input.method !== 'full') fixes.push(`${set('method', 'qlora')} ${names === 'flags' ? '' : 'and '}${set('quant', 'nf4')}`)
  if (input.method === 'full') fixes.push(set('method', 'lora'))
  if (!input.gradientCheckpointing) fixes.push(set('gradientCheckpointing', true))
  // A lever is named only where it lowers this plan's peak (the loss is not always the peak's moment).
  const lowers = (patch: Partial<PlanInput>) => memoryTerms({ ...input, ...patch }).peakBytes < peakBytes
  if ((input.loss ?? 'full') === 'full' && lowers({ loss: 'chunked' })) fixes.push(set('loss', 'chunked'))
  if (!input.offloadActivations && lowers({ offloadActivations: true })) fixes.push(set('offloadActivations', true))
  if (input.attention === 'eager') fixes.push(set('attention', 'sdpa'))
  if (input.batch > 1) fixes.push(`a lower ${fieldName('batch', names)}`)
  else fixes.push(`a lower ${fieldName('seq', names)}`)
  return `${need}: use ${fixes.join(', or ')}`
}
