/**
 * `headroom plan`: predicts peak GPU memory per component for a fine-tune, what fits on the
 * GPU, and (with --recommend) the configuration the fit search chooses and why. Flags are
 * DESIGN.md §2.1's; `--json` prints exactly the MemoryPlan the library and `POST /v1/plans`
 * return, or `{ plan, recommendation }` with --recommend.
 */
import { Command, Option } from 'commander'
import { isDeepStrictEqual } from 'node:util'
import { listGpus, listModels } from '../catalog/index.ts'
import { recommend } from '../planner/recommend.ts'
import { planMemory, planWarnings } from '../planner/plan.ts'
import { flagArgs, PLAN_FIELD_NAMES, planField, type PlanFieldName, type PlanRequest } from '../planner/fields.ts'
import { resolvePlanInput } from '../request/index.ts'
import { InternalError } from '../errors.ts'
import type { Breakdown, MemoryPlan, PlanInput, Recommendation, RecommendGoal } from '../planner/types.ts'
import { formatBytes, formatCount, formatGiB } from '../units.ts'
import { usableMemoryBytes } from '../planner/overhead.ts'
import { memoryTerms } from '../planner/peak.ts'
import { inferenceTerms, maxConcurrentSequences } from '../planner/inference.ts'

type PlanFlags = Record<string, unknown> & {
  recommend?: boolean
  goal?: RecommendGoal
  json?: boolean
  listModels?: boolean
  listGpus?: boolean
}

// Numbers stay strings when they are not numbers, so validation can quote what was typed.
const numberish = (v: string): number | string => (/^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v)

/**
 * The commander options of every plan field, from the table, and the attribute commander
 * stores each under (`--grad-checkpointing` lands in `gradCheckpointing`, the JSON field is
 * `gradientCheckpointing`): requestOf reads them back through this map, so no flag is dropped.
 */
function fieldOptions(): { options: Option[]; attributes: Map<PlanFieldName, string> } {
  const options: Option[] = []
  const attributes = new Map<PlanFieldName, string>()
  for (const name of PLAN_FIELD_NAMES) {
    const f = planField(name)
    const fallback = f.defaultNote ?? (f.default !== undefined ? String(f.default) : undefined)
    const help = fallback ? `${f.help} (default ${fallback})` : f.help
    if (f.kind === 'boolean') {
      const on = new Option(f.flag, help)
      options.push(on, new Option(`--no-${f.flag.slice(2)}`, `turn ${f.flag} off`))
      attributes.set(name, on.attributeName())
      continue
    }
    const opt = new Option(`${f.flag} <${f.arg ?? 'value'}>`, help)
    if (f.kind === 'choice' && f.choices) opt.choices(f.choices)
    if (f.kind === 'count' || f.kind === 'number') opt.argParser(numberish)
    options.push(opt)
    attributes.set(name, opt.attributeName())
  }
  return { options, attributes }
}

export function command(): Command {
  const { options, attributes } = fieldOptions()
  const cmd = new Command('plan')
  for (const o of options) cmd.addOption(o)
  return cmd
    .option('--recommend', 'search for the configuration that fits best and explain it')
    .addOption(new Option('--goal <goal>', 'what --recommend maximises (default max-throughput)').choices(['max-throughput', 'max-context']))
    .option('--json', 'print the MemoryPlan as JSON ({plan, recommendation, command} with --recommend)')
    .option('--list-models', 'list catalog models and exit')
    .option('--list-gpus', 'list GPUs and exit')
    .action(async (flags: PlanFlags, cmd: Command) => {
      if (flags.listModels) return void process.stdout.write(`${listModels().map((m) => `${m.name}  ${formatCount(m.params)} params`).join('\n')}\n`)
      if (flags.listGpus) return void process.stdout.write(`${listGpus().map((g) => `${g.name}  ${formatGiB(g.memoryBytes)}`).join('\n')}\n`)
      const request = requestOf(flags, cmd, attributes)
      const input = await resolvePlanInput(request, { names: 'flags' })
      const plan = planMemory(input)
      const rec = flags.recommend ? recommend(input, { goal: flags.goal, seq: request.seq !== undefined ? input.seq : undefined }) : undefined
      const args = rec ? await recommendedArgs(request, rec.input) : null
      if (flags.json) {
        const out = flags.recommend ? { plan, recommendation: rec ?? null, command: args } : plan
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
        return
      }
      process.stdout.write(renderPlan(input, plan))
      if (flags.recommend) process.stdout.write(renderRecommendation(input, rec ?? null, args))
    })
}

/** Only the fields the user typed: defaults belong to resolvePlanInput, after --config. */
function requestOf(flags: PlanFlags, cmd: Command, attributes: Map<PlanFieldName, string>): PlanRequest {
  const req: Record<string, unknown> = {}
  for (const [name, attribute] of attributes) {
    if (cmd.getOptionValueSource(attribute) === 'cli' && flags[attribute] !== undefined) req[name] = flags[attribute]
  }
  return req as PlanRequest
}

// What the recommendation chooses; the rest of the request (model, config, GPU, device) stays as typed.
const KNOBS: PlanFieldName[] = ['method', 'quant', 'doubleQuant', 'dtype', 'rank', 'alpha', 'targets', 'batch', 'seq', 'gradientCheckpointing', 'attention', 'optimizer', 'loss', 'offloadActivations']

/**
 * The `headroom plan` arguments that give exactly the recommended input when run as printed:
 * what the user typed, with the chosen knobs. A knob other than the method is left out when
 * the resolver gives the same input without it, so no printed flag is a no-op.
 */
async function recommendedArgs(typed: PlanRequest, chosen: PlanInput): Promise<string[]> {
  const request: Record<string, unknown> = { ...typed }
  for (const k of KNOBS) {
    const value = chosen[k as keyof PlanInput]
    if (k === 'quant' && chosen.method === 'full') delete request[k]
    else if ((k === 'rank' || k === 'alpha' || k === 'targets') && chosen.method === 'full') delete request[k]
    else if (k === 'doubleQuant' && chosen.quant !== 'nf4' && chosen.quant !== 'fp4') delete request[k]
    else request[k] = value
  }
  const same = async (r: Record<string, unknown>) => isDeepStrictEqual(await resolvePlanInput(r), chosen)
  if (!(await same(request))) throw new InternalError(`the recommended input does not resolve from its own flags: ${flagArgs(request as PlanRequest).join(' ')}`)
  // The method stays, even where other flags imply it (--dtype alone means LoRA): it is the recommendation's headline.
  for (const k of KNOBS) {
    if (k === 'method' || !(k in request)) continue
    const { [k]: _dropped, ...without } = request
    if (await same(without)) delete request[k]
  }
  return ['headroom', 'plan', ...flagArgs(request as PlanRequest)]
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

// The same keys in phase inference: the MemoryPlan's breakdown keeps its names, activations holds the KV cache.
const INFERENCE_NOTES: Record<keyof Breakdown, string> = {
  weights: 'base model, as loaded for serving',
  adapters: 'LoRA adapter (fp32, unmerged)',
  gradients: 'none in inference',
  optimizer: 'none in inference',
  activations: 'KV cache + one block of the prefill',
  logits: 'last position only, fp32 copies',
  overhead: 'CUDA context, allocator, cuBLAS',
}

const MOMENT = {
  load: 'the loaded model',
  forward: 'the end of the forward, with the logits (and, on stacks that keep it, the previous step\'s graph)',
  loss: 'the start of backward, with the loss buffers over the vocabulary',
  head: "the head's backward, a 4-bit head dequantized again beside the loop's logits and their gradients",
  block: 'one block running its backward (recomputing its activations when checkpointed); the loss buffers are freed by then',
  step: 'optimizer.step(), with every gradient',
}

function describeInput(i: PlanInput): string {
  const method =
    i.method === 'qlora' ? `QLoRA ${i.quant}${i.doubleQuant ? ' + double quant' : ''}` : i.method === 'lora' ? 'LoRA' : 'full fine-tune'
  const lora = i.method === 'full' ? '' : `, r ${i.rank}`
  if (i.phase === 'load') return `load, ${i.method === 'qlora' ? `${i.quant}${i.doubleQuant ? ' + double quant' : ''}` : i.dtype} weights`
  if (i.phase === 'inference') {
    const weights = i.quant !== 'none' ? `${i.quant}${i.doubleQuant ? ' + double quant' : ''} weights` : `${i.dtype} weights`
    return `inference (generate), ${weights}${i.method === 'full' ? '' : ` + LoRA adapter r ${i.rank}`}, ${i.dtype} KV cache, ${i.batch} x ${formatCount(i.seq)} tokens, ${i.attention} attention`
  }
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
    const note = k === 'overhead' && input.overhead ? `calibrated (device profile ${input.overhead.profile})` : (input.phase === 'inference' ? INFERENCE_NOTES : COMPONENT_NOTES)[k]
    lines.push(`  ${k.padEnd(12)} ${formatBytes(bytes).padStart(10)}  ${bar(Math.max(0, share))} ${`${(share * 100).toFixed(0)}%`.padStart(4)}  ${note}`)
  }
  if (input.overhead) {
    const o = input.overhead
    lines.push(`  (overhead terms calibrated by device profile ${o.profile}: workspace ${formatBytes(o.workspaceBytes)}, context ${formatBytes(o.contextBytes)}, allocator slack ${(o.slackFraction * 100).toFixed(1)}%)`)
  }
  lines.push(`  ${'-'.repeat(12)} ${'-'.repeat(10)}`)
  lines.push(`  ${'peak'.padEnd(12)} ${formatBytes(plan.peakBytes).padStart(10)}  device view; ${formatBytes(plan.peakAllocatedBytes)} allocated by tensors`)
  if (input.phase === 'inference') {
    const t = inferenceTerms(input)
    lines.push(`  (activations: KV cache ${formatBytes(t.kvCacheBytes)} + one block's prefill ${formatBytes(t.prefillBytes)})`)
    lines.push(`  (what is live at the peak: the prefill of the whole prompt, with every layer's KV cache; logits of the last position only)`)
  } else lines.push(`  (what is live at the peak: ${MOMENT[memoryTerms(input).moment]})`)
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
  // Offloaded block inputs leave the GPU but need pinned host RAM: say how much, since the plan's bytes are the device's.
  const hostBytes = input.phase === 'train' ? memoryTerms(input).hostBytes : 0
  if (hostBytes > 0) lines.push(`host memory: ${formatGiB(hostBytes)} pinned for the ${input.model.numLayers} offloaded block inputs (--offload-activations)`)
  const concurrent = input.phase === 'inference' ? maxConcurrentSequences(input) : null
  if (concurrent !== null) {
    lines.push(
      concurrent > 0
        ? `most concurrent sequences of ${formatCount(input.seq)} tokens: ${formatCount(concurrent)} (prefilled as one batch)`
        : `no sequence of ${formatCount(input.seq)} tokens fits`,
    )
  }
  if (input.phase === 'inference') {
    if (input.method !== 'full') lines.push(`adapter: ${formatCount(plan.trainableParams)} LoRA parameters${plan.matchedTargets.length > 0 ? ` on ${plan.matchedTargets.join(', ')}` : ''}`)
  } else if (input.method !== 'full') {
    const on = plan.matchedTargets.length > 0 ? ` on ${plan.matchedTargets.join(', ')}` : ''
    lines.push(`trainable: ${formatCount(plan.trainableParams)} parameters (${plan.trainablePercent.toFixed(2)}%)${on}`)
  } else {
    lines.push(`trainable: all ${formatCount(plan.trainableParams)} parameters`)
  }
  // The JSON names fields; on the terminal the same warnings name flags.
  for (const w of planWarnings(input, 'flags')) lines.push(`warning [${w.code}]: ${w.message}`)
  return `${lines.join('\n')}\n`
}

/** The recommendation: the chosen flags, its peak, one reason per choice, and the env to set. */
export function renderRecommendation(base: PlanInput, rec: Recommendation | null, args: string[] | null): string {
  if (base.phase !== 'train') return `\nrecommendation: --recommend plans training; drop --phase ${base.phase}\n`
  if (!base.gpu) return '\nrecommendation: --recommend needs a GPU to fit: add --gpu (and --device cuda)\n'
  if (!rec) {
    const gpu = base.gpu ? `the ${base.gpu.name}` : 'this device'
    return `\nrecommendation: nothing fits ${base.model.name} on ${gpu} with a 10% margin: try a shorter --seq or a GPU with more memory\n`
  }
  const lines = ['', `recommendation (${formatCount(rec.candidatesSearched)} configurations searched):`]
  if (args) lines.push(`  ${args.map(shellWord).join(' ')}`)
  lines.push(`  peak ${formatGiB(rec.plan.peakBytes)}, ${formatCount(rec.input.batch * rec.input.seq)} tokens per step`)
  for (const r of rec.reasons) lines.push(`  - ${r.knob}: ${r.message}`)
  for (const [k, v] of Object.entries(rec.env)) lines.push(`  env ${k}=${v}`)
  return `${lines.join('\n')}\n`
}

/** An argument as a shell would need it typed. */
function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`
}
