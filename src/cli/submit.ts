/**
 * `headroom submit`: sends a fine-tune to a cluster with server-side apply (field manager
 * `headroom`). The objects come either from a rendered file (-f, a YAML stream as `headroom
 * render` prints it) or from the render flags, through the renderer and its admission gate:
 * a job that does not fit is refused before anything is sent, unless --force.
 */
import { Command, Option } from 'commander'
import { readFileSync } from 'node:fs'
import { parseAllDocuments } from 'yaml'
import { ExitError } from '../errors.ts'
import { admit, type Admission } from '../k8s/submit-admission.ts'
import { applyObjects, connect, type ManifestObject } from '../k8s/submit.ts'

type SubmitFlags = {
  file?: string
  kubeconfig?: string
  context?: string
  namespace?: string
  dryRun?: 'server'
  force?: boolean
  json?: boolean
} & RenderFlags

/** The render flags of DESIGN.md §2.1c, passed to renderManifests as they are. */
type RenderFlags = {
  target?: string
  config?: string
  model?: string
  gpu?: string
  seq?: string
  method?: string
  name?: string
  data?: string
  outputVolume?: string
  outputImage?: string
  pushSecret?: string
  image?: string
  nproc?: string
  nnodes?: string
}

const RENDER_FLAGS: (keyof RenderFlags)[] = ['target', 'config', 'model', 'gpu', 'seq', 'method', 'name', 'data', 'outputVolume', 'outputImage', 'pushSecret', 'image', 'nproc', 'nnodes']

export function command(): Command {
  return new Command('submit')
    .option('-f, --file <file>', 'rendered manifests (a YAML stream, `-` for stdin) instead of the render flags')
    .addOption(new Option('--target <target>', 'what to render: a KAITO Workspace or a plain batch/v1 Job').choices(['kaito', 'job']))
    .option('--config <file>', 'training_config YAML (KAITO ConfigMap or the bare document)')
    .option('--model <model>', 'model (catalog name or config.json)')
    .option('--gpu <sku>', 'Azure instance type (e.g. Standard_NC24ads_A100_v4) or GPU')
    .option('--seq <n>', 'max sequence length')
    .option('--method <method>', 'lora or qlora')
    .option('--name <name>', 'metadata.name of the rendered objects')
    .option('--data <source>', 'dataset: URL, or pvc:CLAIM/path')
    .option('--output-volume <pvc>', 'output volume: pvc:CLAIM')
    .option('--output-image <ref>', 'output image reference (KAITO pushes the adapter there)')
    .option('--push-secret <secret>', 'image push secret for --output-image')
    .option('--image <image>', 'the Headroom runtime image (--target job)')
    .option('--nproc <n>', 'processes (GPUs) per node: torchrun')
    .option('--nnodes <n>', 'nodes: an Indexed Job with a headless Service for rendezvous')
    .option('--namespace <ns>', 'namespace (default: the kubeconfig context’s, else default)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context (default: its current-context)')
    .addOption(new Option('--dry-run <mode>', 'let the API server validate and default everything, persisting nothing (dryRun=All)').choices(['server']))
    .option('--force', 'submit a job that does not fit, and take over fields another field manager owns')
    .option('--json', 'print what the API server answered for each object as JSON')
    .action(async (flags: SubmitFlags) => {
      process.exitCode = await submit(flags)
    })
}

/** Parses a YAML stream of manifests; `kind: List` is flattened. Every object needs apiVersion, kind and metadata.name. */
export function parseManifests(text: string, file: string): ManifestObject[] {
  const out: ManifestObject[] = []
  const docs = parseAllDocuments(text)
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length) throw new ExitError(`${file}: document ${i + 1} is not valid YAML: ${doc.errors[0].message}`, { exitCode: 1, path: '--file' })
    const value = doc.toJS() as unknown
    if (value == null) continue
    const items = (value as { kind?: string }).kind === 'List' ? (((value as { items?: unknown[] }).items ?? []) as unknown[]) : [value]
    for (const item of items) {
      const o = item as Partial<ManifestObject>
      if (!o || typeof o !== 'object' || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
        throw new ExitError(`${file}: document ${i + 1} is not a Kubernetes object (it needs apiVersion, kind and metadata.name): render it with headroom render`, { exitCode: 1, path: '--file' })
      }
      out.push(o as ManifestObject)
    }
  }
  if (!out.length) throw new ExitError(`${file} holds no Kubernetes objects: give the output of headroom render`, { exitCode: 1, path: '--file' })
  return out
}

/**
 * The render flags as renderManifests's options (src/k8s/types.ts RenderOptions), converted
 * at the edge as `headroom render` does: the config file read, the model resolved, counts parsed.
 */
async function renderOptions(flags: SubmitFlags): Promise<Record<string, unknown>> {
  const { readConfigFile } = await import('../config/parse.ts')
  const { loadModel } = await import('../catalog/index.ts')
  return {
    target: flags.target,
    config: flags.config === undefined ? undefined : await readConfigFile(flags.config, '--config'),
    configFile: flags.config,
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
  }
}

function count(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new ExitError(`${flag} is "${raw}": give a whole number of 1 or more`, { path: flag.slice(2) })
  return n
}

// The renderer lives in src/k8s/index.ts (renderManifests); named through a variable so this
// command also builds in a tree where the renderer has not landed yet.
const RENDERER = '../k8s/index.ts'

/** The objects to apply and the warnings to print: from -f as they are, or rendered and admitted. */
async function objectsFromFlags(flags: SubmitFlags): Promise<{ objects: ManifestObject[]; warnings: string[] }> {
  const given = RENDER_FLAGS.filter((k) => flags[k] !== undefined)
  if (flags.file) {
    if (given.length) throw new ExitError(`-f ${flags.file} and render flags (--${given.map(kebab).join(', --')}) both given: submit a rendered file, or render from flags, not both`, { path: '--file' })
    const text = flags.file === '-' ? readFileSync(0, 'utf8') : readText(flags.file)
    return { objects: parseManifests(text, flags.file === '-' ? 'stdin' : flags.file), warnings: [] }
  }
  let mod: { renderManifests?: (opts: Record<string, unknown>) => { objects: object[]; admission: Admission } }
  try {
    mod = (await import(RENDERER)) as typeof mod
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err
    mod = {}
  }
  if (typeof mod.renderManifests !== 'function') {
    throw new ExitError('this build has no renderer (src/k8s/index.ts renderManifests): submit a rendered file with -f FILE', { path: '--file' })
  }
  if (!flags.target) throw new ExitError('submit needs -f FILE (rendered manifests) or --target kaito|job with the render flags', { path: '--target' })
  // The renderer refuses a job that does not fit (unless --force) before anything is rendered;
  // admit() below holds the same line for any renderer, so nothing that does not fit is ever sent.
  const rendered = mod.renderManifests(await renderOptions(flags))
  const warnings = admit(rendered.admission, Boolean(flags.force))
  return { objects: rendered.objects as ManifestObject[], warnings }
}

function kebab(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as { code?: string }).code
    throw new ExitError(`-f ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message}: give a file written by headroom render -o FILE`, { exitCode: 1, path: '--file' })
  }
}

async function submit(flags: SubmitFlags): Promise<number> {
  const { objects, warnings } = await objectsFromFlags(flags)
  for (const w of warnings) process.stderr.write(`headroom: warning: ${w}\n`)
  const cluster = connect({ kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace })
  const dryRun = flags.dryRun === 'server'
  const applied = await applyObjects(cluster, objects, { dryRun, force: flags.force })
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ context: cluster.context, dryRun, applied })}\n`)
  } else {
    for (const a of applied) process.stdout.write(`${a.kind.toLowerCase()}/${a.name}${a.namespace ? ` in namespace ${a.namespace}` : ''} serverside-applied${dryRun ? ' (server dry run, nothing persisted)' : ''}\n`)
  }
  const workload = applied.find((a) => a.kind === 'Job' || a.kind === 'Workspace')
  if (workload && !dryRun) {
    process.stderr.write(`headroom: follow it with: headroom status ${workload.name}${workload.namespace ? ` --namespace ${workload.namespace}` : ''} --follow${flags.context ? ` --context ${flags.context}` : ''}${flags.kubeconfig ? ` --kubeconfig ${flags.kubeconfig}` : ''}\n`)
  }
  return 0
}
