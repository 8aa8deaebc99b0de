/**
 * `headroom render --inference`: serving a model (and LoRA adapters) on Kubernetes, planned
 * for the instance type first. kaito: a kaito.sh/v1beta1 Workspace with `inference` (preset +
 * adapters). job: an apps/v1 Deployment running `headroom serve` on the runtime image, and a
 * v1 Service in front of it (serving.ts). Admission is the inference plan (planner/inference.ts)
 * on one GPU of the instance type: the weights + adapters + the KV cache of `batch` sequences
 * of `seq` tokens at the prefill peak; a plan that does not fit is refused (exit 1) with the
 * largest --seq and --batch that fit and an instance type that holds it, unless --force. Pure.
 */
import { SKUS, findHardware } from '../catalog/index.ts'
import type { Hardware, ModelArch } from '../catalog/types.ts'
import { decode, type Sections } from '../config/codec.ts'
import { parseTuningConfig } from '../config/parse.ts'
import { DEFAULT_TEMPLATES } from '../config/templates.ts'
import { ExitError } from '../errors.ts'
import { planMemory } from '../planner/index.ts'
import { maxConcurrentSequences } from '../planner/inference.ts'
import { largestFitting } from '../planner/fit.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'
import { formatGiB } from '../units.ts'
import { AdmissionRefused, LOW_HEADROOM_SHARE } from './admission.ts'
import { kaitoPreset } from './kaito-presets.ts'
import { isDnsLabel, isDnsSubdomain, dnsLabel } from './names.ts'
import { checkName, DEFAULT_IMAGE, isImageRef, planAnnotations, RENDER_DEFAULTS, resolveInstanceType, resolveModel, toYaml } from './render.ts'
import { inferenceWorkspace, serveObjects, type ServedAdapter } from './serving.ts'
import type { Admission, RenderOptions, RenderResult } from './types.ts'
import { assertValid } from './validate.ts'

/**
 * Tokens per sequence planned when --seq is not given: a long chat turn. A model's whole
 * context (128k for Phi-3-mini-128k) would plan a KV cache few GPUs hold; ask for it with --seq.
 */
export const DEFAULT_INFERENCE_SEQ = 4096

/** A parsed `--adapter NAME=SOURCE`. */
export type AdapterSource = { name: string; image: string } | { name: string; claim: string; path?: string }

/**
 * One `--adapter NAME=SOURCE` for a target: NAME a DNS-1123 label (KAITO runs each adapter as a
 * container of that name; serve uses it as the model id); SOURCE an image reference holding the
 * adapter under /data (kaito) or pvc:CLAIM/path, a tune run's output directory on a claim (job).
 * @example parseAdapter('docs=pvc:tuning-results/phi3', 'job') // { name: 'docs', claim: 'tuning-results', path: 'phi3' }
 */
export function parseAdapter(raw: string, target: 'kaito' | 'job'): AdapterSource {
  const example = target === 'kaito' ? '--adapter docs=myregistry.azurecr.io/phi3-docs-adapter:0.1.0' : '--adapter docs=pvc:tuning-results/phi3-docs'
  const bad = (why: string) => new ExitError(`--adapter is "${raw}": ${why}; give NAME=SOURCE, e.g. ${example}`, { path: 'adapter' })
  const eq = raw.indexOf('=')
  if (eq < 0) throw bad('there is no "="')
  const name = raw.slice(0, eq)
  const source = raw.slice(eq + 1)
  if (!isDnsLabel(name, 63)) throw bad(`the name "${name}" is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending alphanumeric)`)
  if (!source) throw bad('the source is empty')
  if (target === 'kaito') {
    if (source.startsWith('pvc:')) throw bad('--target kaito takes an adapter image (KAITO pulls it); a pvc: source is for --target job')
    if (!isImageRef(source)) throw bad(`"${source}" is not an image reference`)
    return { name, image: source }
  }
  if (!source.startsWith('pvc:')) throw bad('--target job mounts adapters from a PersistentVolumeClaim: give pvc:CLAIM/path (an image source is for --target kaito)')
  const rest = source.slice(4)
  const slash = rest.indexOf('/')
  const claim = slash < 0 ? rest : rest.slice(0, slash)
  const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '')
  if (!isDnsSubdomain(claim)) throw bad(`"${claim}" is not a PersistentVolumeClaim name (lower-case letters, digits, '-' and '.')`)
  if (path.split('/').some((p) => p === '..' || p === '.')) throw bad('the path must stay inside the claim (no . or .. segments)')
  return path ? { name, claim, path } : { name, claim }
}

/** Renders the serving manifests; refuses a plan that does not fit one GPU unless `force`. */
export function renderInference(opts: RenderOptions): RenderResult {
  const target = opts.target
  checkInferenceFlags(opts)
  const model = resolveModel(opts.model ?? RENDER_DEFAULTS.model)
  const hardware = resolveInstanceType(opts.gpu ?? RENDER_DEFAULTS.gpu)
  const preset = target === 'kaito' ? kaitoPreset(model) : undefined
  const name = opts.name ?? dnsLabel(`${model.name}-inference`)
  checkName(name, opts.namespace)
  const adapters = (opts.adapters ?? []).map((a) => parseAdapter(a, target))
  const seen = new Set<string>()
  for (const a of adapters) {
    if (seen.has(a.name)) throw new ExitError(`--adapter ${a.name} is given twice: each adapter needs its own name (it is the model id clients ask for)`, { path: 'adapter' })
    seen.add(a.name)
  }
  if (target === 'job' && !opts.tokenSecret) {
    throw new ExitError('--target job --inference needs --token-secret NAME: serve listens on 0.0.0.0 in the pod and refuses that without a token; create one with kubectl create secret generic NAME --from-literal=token=<at least 8 characters>', { path: 'tokenSecret' })
  }

  // One GPU serves: the plan is for one GPU of the instance type.
  const hw: Hardware = { ...hardware, count: 1 }
  const input = inferenceInput(model, hw, opts.seq ?? DEFAULT_INFERENCE_SEQ, opts.batch ?? 1, adapters.length > 0)
  const plan = planMemory(input)
  const admission = admitInference(input, plan, hw, opts.force)
  if (!admission.fits && !opts.force) throw new InferenceRefused(admission, model.name, hardware.sku!, input)

  const plannedAs = `inference: ${input.batch} concurrent sequence${input.batch > 1 ? 's' : ''} of ${input.seq} tokens, ${input.dtype} weights${adapters.length ? ` + ${adapters.length} LoRA adapter${adapters.length > 1 ? 's' : ''} r ${input.rank}` : ''}, ${input.attention} attention`
  const annotations = { ...planAnnotations(plan, input, hw), 'headroom.dev/planned-as': plannedAs }
  const meta = { name, namespace: opts.namespace }
  const objects =
    target === 'kaito'
      ? [inferenceWorkspace({ meta, instanceType: hardware.sku!, preset: preset!, adapters: adapters as { name: string; image: string }[], annotations })]
      : serveObjects({
          meta,
          instanceType: hardware.sku!,
          image: opts.image ?? DEFAULT_IMAGE,
          modelRef: modelRef(model),
          adapters: adapters as ServedAdapter[],
          tokenSecret: opts.tokenSecret!,
          annotations,
        })
  assertValid(objects)
  const head = [
    `# headroom render --inference --target ${target}: ${model.name} on ${hardware.sku} (1 of ${hardware.count} ${hardware.gpu.name})`,
    `# predicted peak ${formatGiB(plan.peakBytes)} of ${formatGiB(plan.gpu?.memoryBytes ?? 0)}; ${plan.fits ? `headroom ${formatGiB(plan.headroomBytes ?? 0)}` : `DOES NOT FIT: ${formatGiB(-(plan.headroomBytes ?? 0))} short (rendered with --force)`}`,
    `# planned as ${plannedAs}`,
  ]
  return { objects, yaml: toYaml(objects, head), admission, plan, input }
}

function checkInferenceFlags(o: RenderOptions): void {
  const usage = (msg: string, path: string) => new ExitError(msg, { path })
  const training: [string, unknown][] = [
    ['--data', o.data],
    ['--output-volume', o.outputVolume],
    ['--output-image', o.outputImage],
    ['--push-secret', o.pushSecret],
    ['--config', o.config],
    ['--method', o.method],
    ['--nproc', o.nproc],
    ['--nnodes', o.nnodes],
  ]
  for (const [flag, v] of training) if (v !== undefined) throw usage(`${flag} is for fine-tuning, not --inference: drop it (serving reads the model and --adapter sources)`, flag.slice(2))
  for (const [flag, v] of [['--seq', o.seq], ['--batch', o.batch]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw usage(`${flag} is ${String(v)}: give a whole number of 1 or more`, flag.slice(2))
  }
  if (o.target === 'kaito') {
    if (o.image !== undefined) throw usage("--image is for --target job: a KAITO Workspace runs KAITO's own inference image", 'image')
    if (o.tokenSecret !== undefined) throw usage("--token-secret is for --target job: KAITO's inference service has no bearer token", 'tokenSecret')
  }
  if (o.image !== undefined && !isImageRef(o.image)) throw usage(`--image is "${o.image}": give an image reference such as registry.example.com/headroom-runtime:0.1.0`, 'image')
  if (o.tokenSecret !== undefined && !isDnsSubdomain(o.tokenSecret)) throw usage(`--token-secret is "${o.tokenSecret}": give the name of a Secret (lower-case letters, digits, '-' and '.') holding the key token`, 'tokenSecret')
}

/**
 * What the server holds: the unquantized weights in the GPU's 16-bit dtype (KAITO's presets and
 * serve load bf16, fp16 where the GPU has no bf16), the template's LoRA rank when adapters are
 * served, and no training state. The LoRA template supplies the rank, targets and attention.
 */
export function inferenceInput(model: ModelArch, hw: Hardware, seq: number, batch: number, withAdapters: boolean): PlanInput {
  const t = DEFAULT_TEMPLATES.lora
  const base = parseTuningConfig(t.text, { file: t.name, target: 'local' }).value as Sections
  const trained = decode(base, { model, device: 'cuda', hardware: hw, method: 'lora', target: 'local' })
  return {
    ...trained,
    phase: 'inference',
    method: withAdapters ? 'lora' : 'full',
    dtype: hw.gpu.bf16 ? 'bf16' : 'fp16',
    quant: 'none',
    doubleQuant: false,
    loraDropout: 0,
    gradientCheckpointing: false,
    seq,
    batch,
    gpus: 1,
  }
}

/** The verdict on one GPU; when it does not fit, the --seq, --batch and instance type that would. */
export function admitInference(input: PlanInput, plan: MemoryPlan, hw: Hardware, force?: boolean): Admission {
  if (!plan.gpu || plan.fits === null || plan.headroomBytes === null) throw new Error('admission needs a plan made against a GPU')
  const warnings: string[] = []
  const admission: Admission = { fits: plan.fits, peakBytes: plan.peakBytes, gpuMemoryBytes: plan.gpu.memoryBytes, headroomBytes: plan.headroomBytes, warnings }
  if (!plan.fits) {
    const fix: string[] = []
    const seq = largestFitting(input.seq, (s) => planMemory({ ...input, seq: s }).fits === true)
    if (seq) fix.push(`--seq ${seq} or less`)
    const batch = maxConcurrentSequences(input)
    if (input.batch > 1 && batch) fix.push(`--batch ${batch} or less`)
    // Same cloud first: a cluster's node pools are in one provider.
    const provider = SKUS.find((s) => s.sku === hw.sku)?.provider
    const bigger = SKUS.filter((s) => s.provider === provider && s.gpuMemoryGiB * 2 ** 30 > plan.gpu!.memoryBytes)
      .sort((a, b) => a.gpuMemoryGiB - b.gpuMemoryGiB)
      .find((s) => planMemory({ ...input, gpu: findHardware(s.sku).gpu }).fits === true)
    if (bigger) fix.push(`--gpu ${bigger.sku} (${bigger.gpuMemoryGiB} GiB per GPU)`)
    admission.fix = fix
    if (force) warnings.push(`--force: rendered although ${plan.model.name} needs ${formatGiB(plan.peakBytes)} for inference and one GPU has ${formatGiB(plan.gpu.memoryBytes)}; expect the server to run out of memory on the longest requests`)
  } else if (plan.headroomBytes < LOW_HEADROOM_SHARE * plan.gpu.memoryBytes) {
    warnings.push(`only ${formatGiB(plan.headroomBytes)} headroom on one ${plan.gpu.name} at ${input.batch} x ${input.seq} tokens: longer or more concurrent requests may run it out of memory; lower --seq or --batch for margin`)
  }
  return admission
}

/** AdmissionRefused (exit 1, nothing rendered), with serving's fixes: flags, not ConfigMap keys. */
export class InferenceRefused extends AdmissionRefused {
  constructor(admission: Admission, model: string, sku: string, input: PlanInput) {
    super(admission, model, { ...findHardware(sku), count: 1 })
    const fixes = admission.fix?.length ? admission.fix.join(', or ') : 'a smaller model'
    this.message = `${model} does not fit one GPU of ${sku} for inference at ${input.batch} x ${input.seq} tokens: it needs ${formatGiB(admission.peakBytes)}, ${formatGiB(-admission.headroomBytes)} more than the ${formatGiB(admission.gpuMemoryBytes)} GPU can give; nothing rendered. To fit, use ${fixes} (or pass --force to render it anyway)`
  }
}

function modelRef(model: ModelArch): string {
  if (model.hfId) return model.hfId
  throw new ExitError(`--model ${model.name} has no hub id: the server downloads the weights in the pod; give a catalog id or a hub id such as microsoft/Phi-3-mini-128k-instruct`, { path: 'model' })
}
