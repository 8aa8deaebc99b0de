/** The shapes `headroom render` (and `submit`, which renders first) take and return. */
import type { ModelArch } from '../catalog/types.ts'
import type { TuningMethod } from '../config/rules.ts'
import type { MemoryPlan, PlanInput } from '../planner/types.ts'

/** kaito: a KAITO Workspace + its tuning ConfigMap. job: a ConfigMap + batch/v1 Job running Headroom's runtime image. */
export type RenderTarget = 'kaito' | 'job'

export type RenderOptions = {
  target: RenderTarget
  /** A tuning ConfigMap or bare training_config, as YAML text; default KAITO's template for the method. */
  config?: string | Uint8Array
  /** Where `config` came from, for issue positions. */
  configFile?: string
  /** A catalog id or hub id, or a resolved architecture (the CLI resolves paths and hub ids); default the seed's phi-3-mini-128k-instruct. */
  model?: string | ModelArch
  /** A cloud instance type from KAITO's SKU tables; default Standard_NC24ads_A100_v4 (the seed's). */
  gpu?: string
  /** Overrides TrainingArguments.max_length. */
  seq?: number
  /** Overrides what QuantizationConfig says (KAITO's tuning.method). */
  method?: TuningMethod
  /** Name of the Workspace or Job (ConfigMap `<name>-config`); default `<model>-tuning`. */
  name?: string
  namespace?: string
  /** `https://...` (a file KAITO or the trainer downloads) or `pvc:CLAIM/path`. */
  data?: string
  /** `pvc:CLAIM`: where the adapter and checkpoints go. */
  outputVolume?: string
  /** kaito only: push the adapter as this image, with `pushSecret` (a docker-registry Secret). */
  outputImage?: string
  pushSecret?: string
  /** job only: the Headroom runtime image. */
  image?: string
  /** job only: processes (GPUs) per node; default the instance type's GPU count. */
  nproc?: number
  /** job only: nodes; more than 1 renders an Indexed Job with a headless Service for rendezvous. */
  nnodes?: number
  /** Render even when the plan does not fit (a warning instead of a refusal). */
  force?: boolean
  /** Serve the model (inference.ts) instead of tuning it: a Workspace with `inference`, or a Deployment + Service running `headroom serve`. */
  inference?: boolean
  /** --inference: `NAME=SOURCE` each; SOURCE an image ref (kaito) or pvc:CLAIM/path (job). */
  adapters?: string[]
  /** --inference: concurrent sequences of `seq` tokens the GPU must hold (default 1). */
  batch?: number
  /** --inference --target job: the Secret whose key `token` is serve's bearer token. */
  tokenSecret?: string
}

/** The memory verdict for the job on one GPU of the instance type. */
export type Admission = {
  fits: boolean
  /** The planner's device-view peak per GPU, bytes. */
  peakBytes: number
  /** One GPU's memory, bytes. */
  gpuMemoryBytes: number
  /** Usable memory left at the peak, bytes (negative when it does not fit). */
  headroomBytes: number
  /** Said on stderr: a forced render, under 10% headroom, ... */
  warnings: string[]
  /** When it does not fit: each change that would make it fit, in the ConfigMap's own keys. */
  fix?: string[]
}

export type RenderResult = {
  /** The rendered objects, in apply order (ConfigMap first), each validated offline. */
  objects: Record<string, unknown>[]
  /** The objects as one YAML stream (`---` between documents), with a comment header. */
  yaml: string
  admission: Admission
  /** What was planned, for callers that show it (submit, status). */
  plan: MemoryPlan
  input: PlanInput
}
