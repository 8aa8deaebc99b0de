/**
 * The render flags of DESIGN.md §2.1c, declared once for `headroom render` and `headroom submit`
 * (which renders from the same flags), and their conversion at the edge into renderManifests'
 * options: the config file read, the model resolved, counts parsed.
 */
import { type Command, Option } from 'commander'
import { loadModel } from '../catalog/index.ts'
import { readConfigFile } from '../config/parse.ts'
import { TUNING_METHODS, type TuningMethod } from '../config/rules.ts'
import { ExitError } from '../errors.ts'
import { RENDER_DEFAULTS, type RenderOptions } from '../k8s/index.ts'

export type RenderFlags = {
  target?: 'kaito' | 'job'
  config?: string
  model?: string
  gpu?: string
  seq?: string
  method?: TuningMethod
  name?: string
  namespace?: string
  data?: string
  outputVolume?: string
  outputImage?: string
  pushSecret?: string
  image?: string
  nproc?: string
  nnodes?: string
  force?: boolean
  inference?: boolean
  adapter?: string[]
  batch?: string
  tokenSecret?: string
}

/** The flags that choose what is rendered (not --namespace or --force, which submit also uses with -f). */
export const RENDER_ONLY_FLAGS = ['target', 'config', 'model', 'gpu', 'seq', 'method', 'name', 'data', 'outputVolume', 'outputImage', 'pushSecret', 'image', 'nproc', 'nnodes', 'inference', 'adapter', 'batch', 'tokenSecret'] as const

/** Adds the render flags to a command; `--target` is mandatory for render, optional for submit (-f instead). */
export function addRenderOptions(cmd: Command, opts: { targetRequired: boolean }): Command {
  const target = new Option('--target <target>', 'kaito: a KAITO Workspace + ConfigMap; job: a ConfigMap + batch/v1 Job running the Headroom runtime image').choices(['kaito', 'job'])
  return cmd
    .addOption(opts.targetRequired ? target.makeOptionMandatory() : target)
    .option('--config <file>', "tuning ConfigMap or training_config YAML (default: KAITO's template for the method)")
    .option('--model <model>', `catalog id or hub id (default ${RENDER_DEFAULTS.model})`)
    .option('--gpu <instance type>', `instance type, e.g. Standard_NC24ads_A100_v4 (default ${RENDER_DEFAULTS.gpu})`)
    .option('--seq <tokens>', 'sequence length (overrides TrainingArguments.max_length)')
    .addOption(new Option('--method <method>', 'tuning method (overrides QuantizationConfig)').choices(TUNING_METHODS))
    .option('--name <name>', 'Workspace or Job name (default <model>-tuning)')
    .option('--namespace <ns>', 'namespace of every object')
    .option('--data <url | pvc:CLAIM/path>', 'the dataset: an https URL, or a file on a PersistentVolumeClaim')
    .option('--output-volume <pvc:CLAIM>', 'PersistentVolumeClaim for the adapter and checkpoints')
    .option('--output-image <ref>', 'kaito: push the adapter as this image (with --push-secret)')
    .option('--push-secret <secret>', 'kaito: docker-registry Secret for --output-image')
    .option('--image <image>', 'job: the Headroom runtime image (docker/Dockerfile)')
    .option('--nproc <n>', "job: processes (GPUs) per node, torchrun (default: the instance type's GPUs)")
    .option('--nnodes <n>', 'job: nodes; more than 1 renders an Indexed Job with a headless Service for rendezvous')
    .option('--inference', 'serve the model instead of tuning it: kaito, a Workspace with inference; job, a Deployment + Service running headroom serve')
    .option('--adapter <NAME=SOURCE>', 'inference: a LoRA adapter to serve as model id NAME; SOURCE an image (kaito) or pvc:CLAIM/path (job); repeatable', (v: string, all: string[] = []) => [...all, v])
    .option('--batch <n>', 'inference: concurrent sequences of --seq tokens one GPU must hold (default 1)')
    .option('--token-secret <secret>', "inference, job: Secret whose key 'token' is serve's bearer token")
}

/** renderManifests' options from the flags, resolved at the edge (file read, hub model loaded). */
export async function renderOptionsFrom(flags: RenderFlags & { target: 'kaito' | 'job' }): Promise<RenderOptions> {
  return {
    target: flags.target,
    config: flags.config === undefined ? undefined : await readConfigFile(flags.config, '--config'),
    configFile: flags.config,
    // A catalog id needs no I/O; anything else (a hub id) is resolved here, at the edge.
    model: flags.model === undefined ? undefined : await loadModel(flags.model),
    gpu: flags.gpu,
    seq: count('--seq', flags.seq),
    method: flags.method,
    name: flags.name,
    namespace: flags.namespace,
    data: flags.data,
    outputVolume: flags.outputVolume,
    outputImage: flags.outputImage,
    pushSecret: flags.pushSecret,
    image: flags.image,
    nproc: count('--nproc', flags.nproc),
    nnodes: count('--nnodes', flags.nnodes),
    force: flags.force,
    inference: flags.inference,
    adapters: flags.adapter,
    batch: count('--batch', flags.batch),
    tokenSecret: flags.tokenSecret,
  }
}

function count(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new ExitError(`${flag} is "${raw}": give a whole number of 1 or more`, { path: flag.slice(2) })
  return n
}
