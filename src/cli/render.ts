/**
 * `headroom render --target kaito|job`: the manifests for a fine-tune on Kubernetes, planned
 * for the instance type first. A job that does not fit exits 1 with the fix named in the
 * ConfigMap's keys and prints nothing on stdout, unless --force. YAML on stdout, or -o FILE.
 */
import { Command, Option } from 'commander'
import { loadModel } from '../catalog/index.ts'
import { readConfigFile } from '../config/parse.ts'
import { ExitError } from '../errors.ts'
import { checkOutputFile, writeOutputFile } from '../files.ts'
import { renderManifests, RENDER_DEFAULTS } from '../k8s/index.ts'
import { formatGiB } from '../units.ts'

type RenderFlags = {
  target: 'kaito' | 'job'
  config?: string
  model?: string
  gpu?: string
  seq?: string
  method?: 'lora' | 'qlora'
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
  output?: string
}

export function command(): Command {
  return new Command('render')
    .addOption(new Option('--target <target>', 'kaito: a KAITO Workspace + ConfigMap; job: a ConfigMap + batch/v1 Job running the Headroom runtime image').choices(['kaito', 'job']).makeOptionMandatory())
    .option('--config <file>', 'tuning ConfigMap or training_config YAML (default: KAITO\'s template for the method)')
    .option('--model <model>', `catalog id or hub id (default ${RENDER_DEFAULTS.model})`)
    .option('--gpu <instance type>', `instance type, e.g. Standard_NC24ads_A100_v4 (default ${RENDER_DEFAULTS.gpu})`)
    .option('--seq <tokens>', 'sequence length (overrides TrainingArguments.max_length)')
    .addOption(new Option('--method <method>', 'tuning method (overrides QuantizationConfig)').choices(['lora', 'qlora']))
    .option('--name <name>', 'Workspace or Job name (default <model>-tuning)')
    .option('--namespace <ns>', 'namespace of every object')
    .option('--data <url | pvc:CLAIM/path>', 'the dataset: an https URL, or a file on a PersistentVolumeClaim')
    .option('--output-volume <pvc:CLAIM>', 'PersistentVolumeClaim for the adapter and checkpoints')
    .option('--output-image <ref>', 'kaito: push the adapter as this image (with --push-secret)')
    .option('--push-secret <secret>', 'kaito: docker-registry Secret for --output-image')
    .option('--image <image>', 'job: the Headroom runtime image (docker/Dockerfile)')
    .option('--nproc <n>', 'job: processes (GPUs) per node, torchrun (default: the instance type\'s GPUs)')
    .option('--nnodes <n>', 'job: nodes; more than 1 renders an Indexed Job with a headless Service for rendezvous')
    .option('--force', 'render even when the plan does not fit the GPU (a warning instead of exit 1)')
    .option('-o, --output <file>', 'write the YAML here; - for stdout (default)')
    .action(async (flags: RenderFlags) => {
      const toFile = flags.output !== undefined && flags.output !== '-'
      // Check -o first, so a bad path fails before any planning.
      if (toFile) await checkOutputFile(flags.output!, '-o', { example: './manifests.yaml' })
      const config = flags.config === undefined ? undefined : await readConfigFile(flags.config, '--config')
      // A catalog id needs no I/O; anything else (a hub id) is resolved here, at the edge.
      const model = flags.model === undefined ? undefined : await loadModel(flags.model)
      const result = renderManifests({
        target: flags.target,
        config,
        configFile: flags.config,
        model,
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
      })
      for (const w of result.admission.warnings) process.stderr.write(`headroom: warning: ${w}\n`)
      if (toFile) {
        await writeOutputFile(flags.output!, result.yaml, '-o')
        const a = result.admission
        process.stderr.write(`wrote ${flags.output}: ${result.objects.map((o) => `${String(o.kind)}/${String((o.metadata as { name: string }).name)}`).join(', ')}; peak ${formatGiB(a.peakBytes)} of ${formatGiB(a.gpuMemoryBytes)} per GPU\n`)
      } else process.stdout.write(result.yaml)
    })
}

function count(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new ExitError(`${flag} is "${raw}": give a whole number of 1 or more`, { path: flag.slice(2) })
  return n
}
