/**
 * Admission: does the job fit one GPU of the instance type, and if not, what in the ConfigMap
 * would make it fit. The fixes are check's own (config/rules.ts memoryFixes), so `check` and
 * `render` never disagree about what to change. Pure.
 */
import type { Hardware } from '../catalog/types.ts'
import { memoryFixes, type Target } from '../config/rules.ts'
import { ExitError } from '../errors.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'
import { formatGiB } from '../units.ts'
import type { Admission } from './types.ts'

/**
 * Below this share of the GPU left free at the predicted peak, render warns: the planner's
 * error on measured runs is a few percent (docs/accuracy.md), and fragmentation, a longer
 * batch than planned or a library upgrade eat the rest.
 */
export const LOW_HEADROOM_SHARE = 0.1

export type AdmitContext = {
  input: PlanInput
  plan: MemoryPlan
  /** Plans a variation of `input` the way the target's runtime would run it. */
  planWith: (patch: Partial<PlanInput>) => MemoryPlan
  hardware: Hardware
  target: Target
  force?: boolean
}

/**
 * The verdict for a plan on the instance type's GPU.
 * @example admit({ input, plan, planWith, hardware, target: 'cluster' }).fix // ['set TrainingArguments.gradient_checkpointing: true', ...]
 */
export function admit(ctx: AdmitContext): Admission {
  const { plan, hardware } = ctx
  if (!plan.gpu || plan.fits === null || plan.headroomBytes === null) throw new Error('admission needs a plan made against a GPU')
  const fits = plan.fits
  const warnings: string[] = []
  const where = onWhat(hardware)
  const admission: Admission = { fits, peakBytes: plan.peakBytes, gpuMemoryBytes: plan.gpu.memoryBytes, headroomBytes: plan.headroomBytes, warnings }
  if (!fits) {
    admission.fix = memoryFixes({ config: {}, target: ctx.target, planInput: ctx.input, plan, planWith: ctx.planWith, hardware }).map((f) => f.text)
    if (ctx.force) warnings.push(`--force: rendered although ${plan.model.name} needs ${formatGiB(plan.peakBytes)} per GPU and ${where} has ${formatGiB(plan.gpu.memoryBytes)}; expect the trainer to run out of memory (exit 3, which fails the Job)`)
  } else if (plan.headroomBytes < LOW_HEADROOM_SHARE * plan.gpu.memoryBytes) {
    const pct = ((100 * plan.headroomBytes) / plan.gpu.memoryBytes).toFixed(1)
    warnings.push(
      `only ${formatGiB(plan.headroomBytes)} headroom on ${where} (${pct}% of the ${plan.gpu.name}'s ${formatGiB(plan.gpu.memoryBytes)}), under ${LOW_HEADROOM_SHARE * 100}%: fragmentation or a longer batch than planned may run it out of memory; lower TrainingArguments.max_length or per_device_train_batch_size for margin`,
    )
  }
  return admission
}

/** Thrown when a plan does not fit and --force was not given: exit 1, nothing rendered. */
export class AdmissionRefused extends ExitError {
  readonly admission: Admission
  constructor(admission: Admission, model: string, hardware: Hardware) {
    const short = formatGiB(-admission.headroomBytes)
    const fixes = admission.fix?.length
      ? `change the ConfigMap: ${admission.fix.map((f, i) => `${i ? 'or ' : ''}${f}`).join('; ')}`
      : 'no single change to the ConfigMap fits it: use an instance type with more GPU memory or a smaller model'
    super(
      `${model} does not fit ${onWhat(hardware)}: it needs ${formatGiB(admission.peakBytes)} per GPU, ${short} more than one ${formatGiB(admission.gpuMemoryBytes)} GPU can give; nothing rendered. To fit, ${fixes} (or pass --force to render it anyway)`,
      { exitCode: 1, path: 'gpu', code: 'does_not_fit' },
    )
    this.name = 'AdmissionRefused'
    this.admission = admission
  }
}

function onWhat(h: Hardware): string {
  return h.sku ? `${h.sku} (${h.count > 1 ? `${h.count}x ` : ''}${h.gpu.name})` : `the ${h.gpu.name}`
}
