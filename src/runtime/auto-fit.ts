/**
 * --auto-fit: after an out-of-memory exit, ask the planner for the configuration that fits
 * (recommend, keeping the sequence length when it can), write it as a training_config file next
 * to the run, and let the supervisor retry once with it.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { recommend } from '../planner/index.ts'
import type { Gpu } from '../catalog/types.ts'
import { encode } from '../config/codec.ts'
import type { PlanInput, Recommendation } from '../planner/types.ts'
import { memoryBudget } from './oom-advice.ts'
import { predictionFor, type RunPrediction, type Sections } from './prediction.ts'


export type AutoFit = {
  configPath: string
  /** What changed, e.g. `gradient checkpointing on, batch 8 → 2`. */
  message: string
  method: PlanInput['method']
  prediction: RunPrediction
}

/** The recommended configuration for the budget the run ran out of, or null when nothing fits. */
export function autoFitInput(input: PlanInput): Recommendation | null {
  // On CPU (or an unknown GPU) the budget is what the device has; recommend() plans against a GPU.
  const budget = memoryBudget(input)
  const gpu: Gpu = input.gpu ?? { name: budget.name, aliases: [], memoryBytes: budget.bytes, bf16Tflops: 0, bandwidthGBps: 0, bf16: false, computeCapability: '0' }
  const base = { ...input, gpu }
  const found = recommend(base, { goal: 'max-throughput', seq: input.seq }) ?? recommend(base, { goal: 'max-context' })
  return found ? { ...found, input: { ...found.input, gpu: input.gpu } } : null
}

/** Writes <output>/auto-fit-config.yaml from the run's sections and the recommendation. */
export function writeAutoFitConfig(ctx: { prediction: RunPrediction; oom: { seqLen: number; batch: number } | null; outputDir: string }): AutoFit | null {
  const failed: PlanInput = { ...ctx.prediction.input, seq: ctx.oom?.seqLen || ctx.prediction.input.seq, batch: ctx.oom?.batch || ctx.prediction.input.batch }
  const rec = autoFitInput(failed)
  if (!rec) return null
  const next = rec.input
  const sections = adjustSections(ctx.prediction.sections, next)
  const changes = describeChanges(failed, next)
  const configPath = join(ctx.outputDir, 'auto-fit-config.yaml')
  const header = [
    '# Written by headroom tune --auto-fit after an out-of-memory failure: the planner’s recommended',
    `# configuration (${changes}). Why:`,
    ...rec.reasons.map((r) => `#   ${r.knob}: ${r.message}`),
  ].join('\n')
  writeFileSync(configPath, `${header}\n${stringify({ training_config: sections })}`)
  return { configPath, message: changes, method: next.method, prediction: predictionFor(next, sections) }
}

/** The run's sections with the recommendation's knobs written in (the codec's encode, so decode reads them back). */
function adjustSections(original: Sections, next: PlanInput): Sections {
  return encode(next, original)
}

function describeChanges(a: PlanInput, b: PlanInput): string {
  const out: string[] = []
  if (a.method !== b.method || a.quant !== b.quant) out.push(`${a.method}${a.quant !== 'none' ? ` ${a.quant}` : ''} → ${b.method}${b.quant !== 'none' ? ` ${b.quant}` : ''}`)
  if (a.gradientCheckpointing !== b.gradientCheckpointing) out.push(`gradient checkpointing ${b.gradientCheckpointing ? 'on' : 'off'}`)
  if (a.batch !== b.batch) out.push(`batch ${a.batch} → ${b.batch}`)
  if (a.seq !== b.seq) out.push(`max_length ${a.seq} → ${b.seq}`)
  if (a.attention !== b.attention) out.push(`attention ${a.attention} → ${b.attention}`)
  if (a.optimizer !== b.optimizer) out.push(`optimizer ${a.optimizer} → ${b.optimizer}`)
  if (a.rank !== b.rank && b.method !== 'full') out.push(`LoRA r ${a.rank} → ${b.rank}`)
  if ((a.loss ?? 'full') !== (b.loss ?? 'full')) out.push(`loss ${a.loss ?? 'full'} → ${b.loss ?? 'full'}`)
  if (Boolean(a.offloadActivations) !== Boolean(b.offloadActivations)) out.push(`activation offloading ${b.offloadActivations ? 'on' : 'off'}`)
  return out.length ? out.join(', ') : 'the same configuration'
}
