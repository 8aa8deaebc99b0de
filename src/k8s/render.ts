/**
 * `renderManifests`: the objects `headroom render` prints and `headroom submit` applies, from
 * the same codec and planner as `tune`. Steps: resolve model and instance type; read the
 * training_config (or KAITO's template for the method); check it with check's rules; decode it
 * as the target's runtime will run it (config/codec.ts); plan it on one GPU of the instance
 * type; admit or refuse it (admission.ts); encode the decoded knobs back into the ConfigMap so
 * the cluster runs exactly what was planned; build the objects; validate each offline
 * (validate.ts). Pure: no file, network or cluster access (the CLI reads files and resolves
 * models that need I/O before calling).
 */
import { stringify } from 'yaml'
import { findHardware, findModelSync, SKUS } from '../catalog/index.ts'
import { unknownModelError } from '../catalog/models.ts'
import type { Hardware, ModelArch } from '../catalog/types.ts'
import { decode, encode, type Sections } from '../config/codec.ts'
import { parseTuningConfig } from '../config/parse.ts'
import { describeInput } from '../config/render.ts'
import { runRules, type Target } from '../config/rules.ts'
import { DEFAULT_TEMPLATES } from '../config/templates.ts'
import { ConfigError, ExitError, InternalError } from '../errors.ts'
import { planMemory } from '../planner/index.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'
import { formatGiB, GIB } from '../units.ts'
import { admit, AdmissionRefused } from './admission.ts'
import { jobObjects, MOUNTS, outputClaimObject } from './job.ts'
import { kaitoPreset } from './kaito-presets.ts'
import { workspace, type WorkspaceOutput } from './kaito.ts'
import { dnsLabel, isDnsLabel, isDnsSubdomain, MAX_NAME } from './names.ts'
import { tuningConfigMap } from './objects.ts'
import { parseData, parseOutputVolume, type DataSource } from './sources.ts'
import type { RenderOptions, RenderResult } from './types.ts'
import { assertValid } from './validate.ts'
import { renderInference } from './inference.ts'

/** The seed's case: Phi-3-mini-128k on one A100 80GB (KAITO's example Workspace). */
export const RENDER_DEFAULTS = { model: 'phi-3-mini-128k-instruct', gpu: 'Standard_NC24ads_A100_v4' } as const

/** The runtime image built from docker/Dockerfile; push it to your registry and pass --image. */
export const DEFAULT_IMAGE = 'ghcr.io/headroom/runtime:0.1.0'

/** KAITO resolves output_dir under /mnt; its templates use /mnt/results. */
const KAITO_OUTPUT_DIR = '/mnt/results'

/**
 * Grace period after SIGTERM: the trainer finishes its step, then writes a checkpoint
 * (trainable weights + optimizer state) to the output volume. STEP_ALLOWANCE covers one step at
 * 4k tokens on a 7B model (tens of seconds) with margin; WRITE_BYTES_PER_S is a conservative
 * network-disk rate (Azure Files standard: 60 MiB/s per share, learn.microsoft.com "Azure Files
 * scalability and performance targets").
 */
const STEP_ALLOWANCE_S = 120
const WRITE_BYTES_PER_S = 50 * 1024 * 1024

/**
 * Renders the manifests for a fine-tune on a cluster, refusing one that does not fit unless
 * `force` (AdmissionRefused, exit 1).
 * @example renderManifests({ target: 'kaito', data: 'https://example.com/train.jsonl', outputVolume: 'pvc:results' }).yaml
 */
export function renderManifests(opts: RenderOptions): RenderResult {
  const target = opts.target
  if (target !== 'kaito' && target !== 'job') throw new ExitError(`--target is "${String(target)}": use kaito (a KAITO Workspace) or job (a batch/v1 Job)`, { path: 'target' })
  if (opts.inference) return renderInference(opts)
  checkTrainingOnly(opts)
  checkFlagCombinations(opts)
  const model = resolveModel(opts.model ?? RENDER_DEFAULTS.model)
  const hardware = resolveInstanceType(opts.gpu ?? RENDER_DEFAULTS.gpu)
  const preset = target === 'kaito' ? kaitoPreset(model) : undefined
  const nproc = opts.nproc ?? hardware.count
  const nnodes = opts.nnodes ?? 1
  if (nproc > hardware.count) throw new ExitError(`--nproc is ${nproc}, but ${hardware.sku} has ${hardware.count} GPU${hardware.count > 1 ? 's' : ''}: give --nproc ${hardware.count} or less, or an instance type with more GPUs`, { path: 'nproc' })
  const name = opts.name ?? dnsLabel(`${model.name}-tuning`)
  checkName(name, opts.namespace)
  const data = opts.data === undefined ? undefined : parseData(opts.data)
  const output = resolveOutput(opts, target, nnodes)
  if (target === 'kaito' && !data) throw new ExitError('--target kaito needs --data: KAITO requires tuning.input; give an https URL of the dataset or pvc:CLAIM/path', { path: 'data' })

  // The target's runtime decides the defaults: KAITO's tuning pod (cluster) or Headroom's trainer (local).
  const runtime: Target = target === 'kaito' ? 'cluster' : 'local'
  const template = DEFAULT_TEMPLATES[opts.method ?? 'qlora']
  // --method overrides the file through the codec, so KAITO's method rules apply to the rendered sections (below), not to the input.
  const parsed = parseTuningConfig(opts.config ?? template.text, { file: opts.config ? (opts.configFile ?? 'config') : template.name, target: runtime })
  if (parsed.issues.length || !parsed.value) {
    throw new ConfigError(parsed.issues.length ? parsed.issues : [{ code: 'no_training_config', path: opts.configFile ?? 'config', message: 'holds no training_config: give a KAITO tuning ConfigMap or a bare training_config document' }])
  }
  const base = parsed.value as Sections

  const hw: Hardware = { ...hardware, count: nproc }
  const input = decode(base, { model, device: 'cuda', hardware: hw, method: opts.method ?? 'auto', seq: opts.seq, target: runtime, presetName: preset })
  const plan = planMemory(input)
  // KAITO's pod checkpoints every quantized model (prepare_model_for_kbit_training's default): plan variations the same way.
  const asRun = (p: PlanInput): PlanInput => (runtime === 'cluster' && p.quant !== 'none' ? { ...p, gradientCheckpointing: true } : p)
  const planWith = (patch: Partial<PlanInput>) => planMemory(asRun({ ...input, ...patch }))
  const admission = admit({ input, plan, planWith, hardware: hw, target: runtime, force: opts.force })
  if (!admission.fits && !opts.force) throw new AdmissionRefused(admission, model.name, hw)

  const sections = clusterSections(encode(input, base), target, data)
  // The rendered config must pass check's rules for its runtime, model (target modules) and GPU (bf16 support).
  const problems = runRules({ config: sections, method: input.method === 'full' ? undefined : input.method, target: runtime, model, hardware: hw, presetName: preset }).filter((i) => i.severity !== 'warning')
  if (problems.length) throw new ConfigError(problems.map((i) => ({ ...i, file: opts.config ? (opts.configFile ?? 'config') : template.name })))
  if (JSON.stringify(decode(sections, { model, device: 'cuda', hardware: hw, target: runtime, presetName: preset })) !== JSON.stringify(input)) {
    throw new InternalError('the rendered training_config does not decode to the planned input')
  }

  const configName = `${name}-config`
  const annotations = planAnnotations(plan, input, hw)
  const meta = { name, namespace: opts.namespace }
  const objects: Record<string, unknown>[] = [tuningConfigMap({ name: configName, namespace: opts.namespace }, sections, name, annotations)]
  if (target === 'kaito') {
    if (input.method === 'full') throw new ExitError('--target kaito tunes with lora or qlora only: use --method lora or --method qlora', { path: 'method' })
    objects.push(workspace({ meta, instanceType: hardware.sku!, preset: preset!, method: input.method, configMap: configName, data: data!, output: output as WorkspaceOutput, annotations }))
  } else {
    let claim = (output as { claim?: string } | undefined)?.claim
    if (!claim) {
      claim = `${name}-output`
      objects.push(outputClaimObject({ name: claim, namespace: opts.namespace }, name, outputStorageGi(model, plan)))
    }
    objects.push(
      ...jobObjects({
        meta,
        instanceType: hardware.sku!,
        image: opts.image ?? DEFAULT_IMAGE,
        configMap: configName,
        modelRef: modelRef(model),
        data,
        outputClaim: claim,
        nproc,
        nnodes,
        predictedPeakAllocatedBytes: plan.peakAllocatedBytes,
        graceSeconds: graceSeconds(plan),
        annotations,
      }),
    )
  }
  assertValid(objects)
  return { objects, yaml: toYaml(objects, header(target, model, hw, plan, input, nnodes)), admission, plan, input }
}

/** The serving flags belong to --inference. */
function checkTrainingOnly(o: RenderOptions): void {
  for (const [flag, v] of [['--adapter', o.adapters?.length ? o.adapters : undefined], ['--batch', o.batch], ['--token-secret', o.tokenSecret]] as const) {
    if (v !== undefined) throw new ExitError(`${flag} is for --inference (serving): add --inference, or drop ${flag} to render a fine-tune`, { path: flag.slice(2) })
  }
}

/** Flags that only one target (or one shape of job) takes: a usage error naming the other. */
function checkFlagCombinations(o: RenderOptions): void {
  const usage = (msg: string, path: string) => new ExitError(msg, { path })
  for (const [flag, v] of [['--nproc', o.nproc], ['--nnodes', o.nnodes]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw usage(`${flag} is ${String(v)}: give a whole number of 1 or more`, flag.slice(2))
  }
  if (o.seq !== undefined && !(Number.isInteger(o.seq) && o.seq > 0)) throw usage(`--seq is ${String(o.seq)}: give a whole number of tokens, e.g. --seq 2048`, 'seq')
  if (o.method !== undefined && o.method !== 'lora' && o.method !== 'qlora') throw usage(`--method is "${String(o.method)}": use lora or qlora`, 'method')
  if (o.target === 'kaito') {
    if (o.image !== undefined) throw usage('--image is for --target job: a KAITO Workspace runs KAITO\'s own tuning image', 'image')
    if ((o.nproc ?? 1) > 1 || (o.nnodes ?? 1) > 1 || o.nproc !== undefined || o.nnodes !== undefined) {
      throw usage('--nproc and --nnodes are for --target job: KAITO tunes on one node and uses all of its GPUs (accelerate launch)', o.nnodes !== undefined ? 'nnodes' : 'nproc')
    }
  } else {
    if (o.outputImage !== undefined || o.pushSecret !== undefined) throw usage('--output-image and --push-secret are for --target kaito: a Job writes the adapter to --output-volume pvc:CLAIM', 'outputImage')
  }
  if (o.outputVolume !== undefined && o.outputImage !== undefined) throw usage('give --output-volume or --output-image, not both: KAITO takes exactly one output', 'outputVolume')
  if (o.outputImage !== undefined && o.pushSecret === undefined) throw usage('--output-image needs --push-secret S: the name of a docker-registry Secret KAITO pushes the adapter image with', 'pushSecret')
  if (o.pushSecret !== undefined && o.outputImage === undefined) throw usage('--push-secret goes with --output-image REF', 'pushSecret')
  if (o.image !== undefined && !isImageRef(o.image)) throw usage(`--image is "${o.image}": give an image reference such as registry.example.com/headroom-runtime:0.1.0`, 'image')
}

export function resolveModel(m: string | ModelArch): ModelArch {
  if (typeof m !== 'string') return m
  const found = findModelSync(m)
  if (!found) throw unknownModelError(m)
  return found
}

/** An instance type from KAITO's SKU tables: render schedules on it, so a bare GPU name is not enough. */
export function resolveInstanceType(gpu: string): Hardware {
  const hw = findHardware(gpu)
  if (hw.sku) return hw
  const skus = SKUS.filter((s) => s.gpu === hw.gpu.name).map((s) => s.sku)
  throw new ExitError(
    `--gpu ${gpu} is a GPU, not an instance type: render pins the job to an instance type; ${skus.length ? `ones with the ${hw.gpu.name}: ${skus.slice(0, 6).join(', ')}` : 'headroom plan --list-gpus lists them'}`,
    { path: 'gpu', code: 'unknown_gpu' },
  )
}

export function checkName(name: string, namespace: string | undefined): void {
  if (!isDnsLabel(name, MAX_NAME)) {
    throw new ExitError(`--name is "${name}": give a DNS-1123 label of at most ${MAX_NAME} characters (lower-case letters, digits and '-', starting and ending alphanumeric), e.g. --name phi3-tuning`, { path: 'name' })
  }
  if (namespace !== undefined && !isDnsLabel(namespace)) {
    throw new ExitError(`--namespace is "${namespace}": give a DNS-1123 label (lower-case letters, digits and '-'), e.g. --namespace default`, { path: 'namespace' })
  }
}

function resolveOutput(o: RenderOptions, target: 'kaito' | 'job', nnodes: number): WorkspaceOutput | { kind: 'pvc'; claim: string } | undefined {
  if (o.outputVolume !== undefined) return { kind: 'pvc', claim: parseOutputVolume(o.outputVolume) }
  if (o.outputImage !== undefined) {
    if (!isImageRef(o.outputImage)) throw new ExitError(`--output-image is "${o.outputImage}": give an image reference such as myregistry.azurecr.io/phi3-adapter:0.1.0`, { path: 'outputImage' })
    if (!isDnsSubdomain(o.pushSecret!)) throw new ExitError(`--push-secret is "${o.pushSecret}": give the name of a docker-registry Secret (lower-case letters, digits, '-' and '.')`, { path: 'pushSecret' })
    return { kind: 'image', image: o.outputImage, pushSecret: o.pushSecret! }
  }
  if (target === 'kaito') throw new ExitError('--target kaito needs an output: --output-volume pvc:CLAIM, or --output-image REF --push-secret S (KAITO requires tuning.output)', { path: 'outputVolume' })
  if (nnodes > 1) throw new ExitError(`--nnodes ${nnodes} needs --output-volume pvc:CLAIM of a ReadWriteMany claim (e.g. azurefile-csi): every node reads the checkpoint rank 0 writes`, { path: 'outputVolume' })
  return undefined
}

/** A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest] (distribution/reference grammar, simplified). */
export function isImageRef(s: string): boolean {
  return s.length <= 255 && /^([a-zA-Z0-9.-]+(:[0-9]+)?\/)?[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/.test(s)
}

/** What the trainer in the image loads: the hub id (the image holds only the tiny model). */
function modelRef(model: ModelArch): string {
  if (model.hfId) return model.hfId
  throw new ExitError(`--model ${model.name} has no hub id: a Job downloads the weights in the pod; give a catalog id or a hub id such as microsoft/Phi-3-mini-128k-instruct`, { path: 'model' })
}

/**
 * The sections the cluster runs: output_dir under /mnt (KAITO's webhook requires it; the Job
 * mounts the output volume there), the dataset path inside the input volume, and weights
 * downloaded in the pod (KAITO pulls them in before; the Job fetches them from the hub).
 */
function clusterSections(s: Sections, target: 'kaito' | 'job', data: DataSource | undefined): Sections {
  const train = (s.TrainingArguments ??= {})
  if (target === 'job') train.output_dir = MOUNTS.output
  else if (typeof train.output_dir !== 'string' || !train.output_dir.startsWith('/mnt/')) train.output_dir = KAITO_OUTPUT_DIR
  if (target === 'job') {
    const m = (s.ModelConfig ??= {})
    if (m.local_files_only === true) m.local_files_only = false
  }
  if (data?.kind === 'pvc' && data.path) (s.DatasetConfig ??= {}).dataset_path = `${MOUNTS.data}/${data.path}`
  return s
}

/** Seconds between SIGTERM and SIGKILL: a step plus writing the checkpoint, rounded up to a minute. */
export function graceSeconds(plan: MemoryPlan): number {
  // A checkpoint holds the trainable weights, their optimizer state and (full fine-tuning) the rest.
  const b = plan.breakdown
  const bytes = b.adapters + b.optimizer + (plan.trainablePercent > 50 ? b.weights : 0)
  return Math.ceil((STEP_ALLOWANCE_S + bytes / WRITE_BYTES_PER_S) / 60) * 60
}

/**
 * The output claim's size: the 16-bit weights cached from the hub (HF_HOME on the volume),
 * three checkpoints of trainable state (train.py keeps save_total_limit), and 5 GiB spare.
 */
export function outputStorageGi(model: ModelArch, plan: MemoryPlan): number {
  const b = plan.breakdown
  const checkpoint = b.adapters + b.optimizer + (plan.trainablePercent > 50 ? b.weights : 0)
  return Math.ceil((model.params * 2 + 3 * checkpoint) / GIB) + 5
}

export function planAnnotations(plan: MemoryPlan, input: PlanInput, hw: Hardware): Record<string, string> {
  return {
    'headroom.dev/model': plan.model.name,
    'headroom.dev/instance-type': hw.sku ?? hw.gpu.name,
    'headroom.dev/predicted-peak-bytes': String(plan.peakBytes),
    'headroom.dev/gpu-memory-bytes': String(plan.gpu?.memoryBytes ?? 0),
    'headroom.dev/planned-as': describeInput(input),
  }
}

function header(target: string, model: ModelArch, hw: Hardware, plan: MemoryPlan, input: PlanInput, nnodes: number): string[] {
  const gpus = `${hw.count > 1 ? `${hw.count}x ` : ''}${hw.gpu.name}`
  const verdict = plan.fits ? `headroom ${formatGiB(plan.headroomBytes ?? 0)}` : `DOES NOT FIT: ${formatGiB(-(plan.headroomBytes ?? 0))} short (rendered with --force)`
  return [
    `# headroom render --target ${target}: ${model.name} on ${hw.sku} (${gpus}${nnodes > 1 ? `, ${nnodes} nodes` : ''})`,
    `# predicted peak ${formatGiB(plan.peakBytes)} per GPU of ${formatGiB(plan.gpu?.memoryBytes ?? 0)}; ${verdict}`,
    `# planned as: ${describeInput(input)}`,
  ]
}

export function toYaml(objects: Record<string, unknown>[], head: string[]): string {
  // YAML 1.1 quoting: PyYAML (KAITO, the trainer) and Go's YAML read a bare no/on/yes as booleans.
  const docs = objects.map((o) => stringify(o, { version: '1.1', lineWidth: 0 }))
  return `${head.join('\n')}\n${docs.map((d) => `---\n${d}`).join('')}`
}
