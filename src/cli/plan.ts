/**
 * `headroom plan`: predicts peak GPU memory per component for a fine-tune, what fits on the
 * GPU, and (with --recommend) the configuration the fit search chooses and why. Flags are
 * DESIGN.md §2.1's; `--json` prints exactly the MemoryPlan the library and `POST /v1/plans`
 * return, or `{ plan, recommendation }` with --recommend.
 */
import { Command, Option } from 'commander'
import { listGpus, listModels } from '../catalog/index.ts'
import { recommend } from '../planner/recommend.ts'
import { planMemory } from '../planner/plan.ts'
import { resolvePlanInput, type PlanRequest } from '../planner/request.ts'
import type { Breakdown, MemoryPlan, PlanInput, Recommendation, RecommendGoal } from '../planner/types.ts'
import { formatBytes, formatCount, formatGiB } from '../units.ts'
import { usableMemoryBytes } from '../planner/overhead.ts'
import { memoryTerms } from '../planner/peak.ts'

type PlanFlags = Omit<PlanRequest, 'targets'> & {
  targets?: string
  recommend?: boolean
  goal?: RecommendGoal
  json?: boolean
  listModels?: boolean
  listGpus?: boolean
}

// Numbers stay strings when they are not numbers, so validation can quote what was typed.
const numberish = (v: string): number | string => (/^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v)

export function command(): Command {
  return new Command('plan')
    .option('--model <model>', 'catalog id, path/to/config.json or hub id (default phi-3-mini-128k-instruct)')
    .option('--config <file>', 'KAITO training_config or ConfigMap YAML; flags override it')
    .addOption(new Option('--phase <phase>', 'load = model loaded, before the first step; default train').choices(['load', 'train']))
    .addOption(new Option('--method <method>', 'fine-tuning method (default qlora)').choices(['full', 'lora', 'qlora']))
    .addOption(new Option('--dtype <dtype>', 'weights and compute dtype (default bf16); alone, the unquantized precision').choices(['fp32', 'fp16', 'bf16']))
    .addOption(new Option('--quant <quant>', 'bitsandbytes quantization of the base weights (default nf4 for qlora)').choices(['none', 'int8', 'nf4', 'fp4']))
    .option('--double-quant', 'quantize the 4-bit scales too (default on for the seed case)')
    .option('--no-double-quant', 'keep fp32 block scales')
    .option('--rank <n>', 'LoRA rank (default 8)', numberish)
    .option('--alpha <n>', 'LoRA alpha (default 8)', numberish)
    .option('--targets <modules>', 'LoRA target modules, comma-separated, or all-linear')
    .option('--batch <n>', 'micro-batch per device (default 1)', numberish)
    .option('--seq <n>', 'tokens per sequence (default 2048)', numberish)
    .option('--grad-checkpointing', 'recompute activations in backward (default on for qlora)')
    .option('--no-grad-checkpointing', 'keep every activation for backward')
    .addOption(new Option('--attention <impl>', 'attention implementation (default sdpa)').choices(['eager', 'sdpa', 'flash']))
    .addOption(new Option('--optimizer <name>', 'optimizer (default adamw)').choices(['adamw', 'adamw_8bit', 'paged_adamw_8bit', 'sgd']))
    .option('--gpu <gpu>', 'GPU name or Azure SKU, e.g. A100-80GB, Standard_NC24ads_A100_v4 (default A100-80GB)')
    .option('--gpus <n>', 'GPUs (default: the SKU\'s count, else 1)', numberish)
    .addOption(new Option('--parallelism <kind>', 'multi-GPU strategy (default ddp)').choices(['ddp', 'fsdp']))
    .addOption(new Option('--device <device>', 'cpu: no CUDA context or allocator slack').choices(['cuda', 'cpu']))
    .option('--recommend', 'search for the configuration that fits best and explain it')
    .addOption(new Option('--goal <goal>', 'what --recommend maximises (default max-throughput)').choices(['max-throughput', 'max-context']))
    .option('--json', 'print the MemoryPlan as JSON ({plan, recommendation} with --recommend)')
    .option('--list-models', 'list catalog models and exit')
    .option('--list-gpus', 'list GPUs and exit')
    .action(async (flags: PlanFlags, cmd: Command) => {
      if (flags.listModels) return void process.stdout.write(`${listModels().map((m) => `${m.name}  ${formatCount(m.params)} params`).join('\n')}\n`)
      if (flags.listGpus) return void process.stdout.write(`${listGpus().map((g) => `${g.name}  ${formatGiB(g.memoryBytes)}`).join('\n')}\n`)
      const input = await resolvePlanInput(requestOf(flags, cmd), { names: 'flags' })
      const plan = planMemory(input)
      const rec = flags.recommend ? recommend(input, { goal: flags.goal, seq: cmd.getOptionValueSource('seq') === 'cli' ? input.seq : undefined }) : undefined
      if (flags.json) {
        const out = flags.recommend ? { plan, recommendation: rec ?? null } : plan
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
        return
      }
      process.stdout.write(renderPlan(input, plan))
      if (flags.recommend) process.stdout.write(renderRecommendation(input, rec ?? null))
    })
}

/** Only the flags the user typed: defaults belong to resolvePlanInput, after --config. */
function requestOf(flags: PlanFlags, cmd: Command): Record<string, unknown> {
  const fields = [
    'model', 'config', 'phase', 'method', 'dtype', 'quant', 'doubleQuant', 'rank', 'alpha', 'targets', 'batch', 'seq',
    'gradientCheckpointing', 'attention', 'optimizer', 'gpu', 'gpus', 'parallelism', 'device',
  ] as const
  const req: Record<string, unknown> = {}
  for (const f of fields) {
    if (cmd.getOptionValueSource(f) === 'cli' && flags[f] !== undefined) req[f] = flags[f]
  }
  return req
}

const BAR_WIDTH = 28
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉']

/** A bar of BAR_WIDTH cells filled in proportion to share (0-1), in eighths of a cell. */
export function bar(share: number): string {
  const eighths = Math.round(Math.max(0, Math.min(1, share)) * BAR_WIDTH * 8)
  const full = Math.floor(eighths / 8)
  const s = '█'.repeat(full) + EIGHTHS[eighths % 8]
  return s.padEnd(BAR_WIDTH, ' ')
}

const COMPONENT_NOTES: Record<keyof Breakdown, string> = {
  weights: 'base model',
  adapters: 'LoRA A and B',
  gradients: 'of trainable parameters',
  optimizer: 'states (and step buffers)',
  activations: 'saved for backward',
  logits: 'loss over the vocabulary',
  overhead: 'CUDA context, allocator, cuBLAS',
}

const MOMENT = {
  load: 'the loaded model',
  loss: 'the start of backward, with the loss buffers over the vocabulary',
  block: 'one block running its backward (recomputing its activations when checkpointed); the loss buffers are freed by then',
  step: 'optimizer.step(), with every gradient',
}

function describeInput(i: PlanInput): string {
  const method =
    i.method === 'qlora' ? `QLoRA ${i.quant}${i.doubleQuant ? ' + double quant' : ''}` : i.method === 'lora' ? 'LoRA' : 'full fine-tune'
  const lora = i.method === 'full' ? '' : `, r ${i.rank}`
  if (i.phase === 'load') return `load, ${i.method === 'qlora' ? `${i.quant}${i.doubleQuant ? ' + double quant' : ''}` : i.dtype} weights`
  return `${method}, ${i.dtype}${lora}, batch ${i.batch} x ${formatCount(i.seq)} tokens, ${i.attention} attention, ${i.gradientCheckpointing ? 'checkpointing' : 'no checkpointing'}, ${i.optimizer}`
}

/** The human report: header, breakdown with bars, total against the GPU, fit, warnings. */
export function renderPlan(input: PlanInput, plan: MemoryPlan): string {
  const lines: string[] = []
  const gpu = plan.gpu ? `${plan.gpu.name}${input.gpus > 1 ? ` x${input.gpus} (${input.parallelism}, per GPU)` : ''}` : input.device === 'cpu' ? 'CPU' : 'no GPU'
  lines.push(`${plan.model.name} (${formatCount(plan.model.params)} params) on ${gpu}`)
  lines.push(describeInput(input))
  lines.push('')
  const keys = Object.keys(plan.breakdown) as (keyof Breakdown)[]
  for (const k of keys) {
    const bytes = plan.breakdown[k]
    const share = plan.peakBytes > 0 ? bytes / plan.peakBytes : 0
    lines.push(`  ${k.padEnd(12)} ${formatBytes(bytes).padStart(10)}  ${bar(share)} ${`${(share * 100).toFixed(0)}%`.padStart(4)}  ${COMPONENT_NOTES[k]}`)
  }
  lines.push(`  ${'-'.repeat(12)} ${'-'.repeat(10)}`)
  lines.push(`  ${'peak'.padEnd(12)} ${formatBytes(plan.peakBytes).padStart(10)}  device view; ${formatBytes(plan.peakAllocatedBytes)} allocated by tensors`)
  lines.push(`  (what is live at the peak: ${MOMENT[memoryTerms(input).moment]})`)
  lines.push('')
  if (plan.gpu && plan.fits !== null && plan.headroomBytes !== null) {
    const usable = usableMemoryBytes(plan.gpu)
    lines.push(
      plan.fits
        ? `fits: ${formatGiB(plan.peakBytes)} of ${formatGiB(usable)} usable on the ${plan.gpu.name}, ${formatGiB(plan.headroomBytes)} headroom`
        : `does not fit: ${formatGiB(plan.peakBytes)} needed, ${formatGiB(usable)} usable on the ${plan.gpu.name} (${formatGiB(-plan.headroomBytes)} short)`,
    )
  }
  if (plan.maxSeqLen !== null) {
    lines.push(
      plan.maxSeqLen > 0
        ? `longest sequence that fits: ${formatCount(plan.maxSeqLen)} tokens at batch ${input.batch}${plan.maxSeqLen === input.model.maxPositionEmbeddings ? ' (the model\'s limit)' : ''}`
        : `no sequence length fits at batch ${input.batch}`,
    )
  }
  if (input.method !== 'full') {
    const on = plan.matchedTargets.length > 0 ? ` on ${plan.matchedTargets.join(', ')}` : ''
    lines.push(`trainable: ${formatCount(plan.trainableParams)} parameters (${plan.trainablePercent.toFixed(2)}%)${on}`)
  } else {
    lines.push(`trainable: all ${formatCount(plan.trainableParams)} parameters`)
  }
  for (const w of plan.warnings) lines.push(`warning [${w.code}]: ${w.message}`)
  return `${lines.join('\n')}\n`
}

function flagsOf(i: PlanInput): string {
  const parts = [`--method ${i.method}`]
  if (i.quant !== 'none') parts.push(`--quant ${i.quant}${i.doubleQuant ? ' --double-quant' : ''}`)
  parts.push(`--dtype ${i.dtype}`)
  if (i.method !== 'full') parts.push(`--rank ${i.rank}`)
  parts.push(`--batch ${i.batch}`, `--seq ${i.seq}`, i.gradientCheckpointing ? '--grad-checkpointing' : '--no-grad-checkpointing')
  parts.push(`--attention ${i.attention}`, `--optimizer ${i.optimizer}`)
  return parts.join(' ')
}

/** The recommendation: the chosen flags, its peak, one reason per choice, and the env to set. */
export function renderRecommendation(base: PlanInput, rec: Recommendation | null): string {
  if (base.phase === 'load') return '\nrecommendation: --recommend plans training; drop --phase load\n'
  if (!base.gpu) return '\nrecommendation: --recommend needs a GPU to fit: add --gpu (and --device cuda)\n'
  if (!rec) {
    const gpu = base.gpu ? `the ${base.gpu.name}` : 'this device'
    return `\nrecommendation: nothing fits ${base.model.name} on ${gpu} with a 10% margin: try a shorter --seq or a GPU with more memory\n`
  }
  const lines = ['', `recommendation (${formatCount(rec.candidatesSearched)} configurations searched):`]
  lines.push(`  ${flagsOf(rec.input)}`)
  lines.push(`  peak ${formatGiB(rec.plan.peakBytes)}, ${formatCount(rec.input.batch * rec.input.seq)} tokens per step`)
  for (const r of rec.reasons) lines.push(`  - ${r.knob}: ${r.message}`)
  for (const [k, v] of Object.entries(rec.env)) lines.push(`  env ${k}=${v}`)
  return `${lines.join('\n')}\n`
}
