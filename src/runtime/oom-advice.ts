/**
 * The planner's fix for an out-of-memory run, in the words the user acts on: "at 6,144 tokens
 * this needs 31.2 GiB, the GPU has 24.0 GiB: enable gradient checkpointing or set max_length
 * to 4,096". On CPU the budget is the machine's RAM.
 */
import { totalmem } from 'node:os'
import { maxBatch, maxSeqLen, planMemory } from '../planner/index.ts'
import type { PlanInput } from '../planner/types.ts'
import { formatCount, formatGiB } from '../units.ts'
import type { RunPrediction } from './prediction.ts'

/**
 * Before a run starts: a warning when the planner's worst case (every batch padded to max_length,
 * the configured micro-batch) needs more than the device has, with the changes that would fit;
 * null when it fits, or on a GPU the catalog does not know (no budget to compare with). A warning,
 * not a refusal: the batches a dataset really has may be shorter than max_length.
 * @example preflightWarning(prediction) // "the worst case at max_length may not fit: at 131,072 tokens × batch 1 this needs …"
 */
export function preflightWarning(prediction: RunPrediction): string | null {
  const input = prediction.input
  const lead = 'the worst case at max_length may not fit (batches padded that long would run out of memory)'
  if (input.device === 'cuda' && !input.gpu) return null
  const budget = memoryBudget(input)
  // CPU ranks share this machine's RAM; the plan is per rank (GPU ranks each have their own device).
  if (input.device === 'cpu' && input.gpus > 1) {
    const all = prediction.plan.peakBytes * input.gpus
    if (all <= budget.bytes) return null
    return `${lead}: at ${formatCount(input.seq)} tokens × batch ${input.batch} each of ${input.gpus} ranks needs ${formatGiB(prediction.plan.peakBytes)}, ${formatGiB(all)} in all, and ${budget.name} has ${formatGiB(budget.bytes)}: lower TrainingArguments.max_length or the number of ranks`
  }
  if (prediction.plan.peakBytes <= budget.bytes) return null
  return `${lead}: ${oomAdvice(prediction, null)}`
}

/** Where the run's memory comes from: the GPU the planner knows, else host RAM. */
export function memoryBudget(input: PlanInput): { name: string; bytes: number } {
  if (input.gpu) return { name: `the ${input.gpu.name}`, bytes: input.gpu.memoryBytes }
  return { name: input.device === 'cuda' ? 'the GPU' : 'this machine', bytes: totalmem() }
}

// Suggested lengths are rounded down to a multiple of this, as people write them (4,096 not 4,133).
const SEQ_ROUNDING = 128

/**
 * One sentence: what the failing shape needs, what the device has, and the changes that fit.
 * @example oomAdvice(prediction, { seqLen: 6144, batch: 1 })
 */
export function oomAdvice(prediction: RunPrediction, oom: { seqLen: number; batch: number } | null): string {
  const input: PlanInput = { ...prediction.input, seq: oom?.seqLen || prediction.input.seq, batch: oom?.batch || prediction.input.batch }
  const budget = memoryBudget(input)
  const fitOpts = { budgetBytes: budget.bytes }
  const plan = planMemory(input)
  const fits = (change: Partial<PlanInput>) => planMemory({ ...input, ...change }).peakBytes <= budget.bytes
  const fixes: string[] = []
  if (!input.gradientCheckpointing && fits({ gradientCheckpointing: true })) fixes.push('enable gradient checkpointing (TrainingArguments.gradient_checkpointing: true)')
  if (input.attention === 'eager' && fits({ attention: 'sdpa' })) fixes.push('use sdpa attention (ModelConfig.attn_implementation: sdpa)')
  if (input.batch > 1) {
    const batch = maxBatch(input, fitOpts)
    if (batch && batch < input.batch) fixes.push(`set TrainingArguments.per_device_train_batch_size to ${batch}`)
  }
  const seq = maxSeqLen(input, fitOpts)
  if (seq && seq < input.seq) {
    const rounded = seq >= SEQ_ROUNDING ? Math.floor(seq / SEQ_ROUNDING) * SEQ_ROUNDING : seq
    fixes.push(`set TrainingArguments.max_length to ${formatCount(rounded)}`)
  }
  if (input.method === 'lora' && input.quant === 'none' && fits({ method: 'qlora', quant: 'nf4', doubleQuant: true })) {
    fixes.push('use QLoRA (QuantizationConfig.load_in_4bit: true, bnb_4bit_quant_type: nf4)')
  }
  if (input.method === 'full' && fits({ method: 'lora' })) fixes.push('fine-tune with LoRA instead of full fine-tuning (--method lora)')
  const needs = `at ${formatCount(input.seq)} tokens × batch ${input.batch} this needs ${formatGiB(plan.peakBytes)}, ${budget.name} has ${formatGiB(budget.bytes)}`
  if (plan.peakBytes <= budget.bytes) {
    return `${needs}, so by the planner it fits: other processes may hold memory on the device (check nvidia-smi)${fixes.length ? `; for more room, ${fixes.join(' or ')}` : ''}`
  }
  if (!fixes.length) return `${needs}: nothing the planner searches fits; use a device with more memory (headroom plan --recommend shows the options)`
  return `${needs}: ${fixes.join(' or ')}`
}
