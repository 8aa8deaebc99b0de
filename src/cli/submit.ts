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
import { MIB } from '../units.ts'
import { readBoundedFile } from '../files.ts'
import { renderManifests } from '../k8s/index.ts'
import { admit } from '../k8s/submit-admission.ts'
import { applyObjects, connect, type ManifestObject } from '../k8s/submit.ts'
import { addRenderOptions, RENDER_ONLY_FLAGS, renderOptionsFrom, type RenderFlags } from './render-flags.ts'

// A rendered stream is a few KiB; 4 MiB leaves room for many objects and refuses a wrong file early.
const MAX_MANIFEST_BYTES = 4 * MIB

type SubmitFlags = {
  file?: string
  kubeconfig?: string
  context?: string
  dryRun?: 'server'
  json?: boolean
} & RenderFlags

export function command(): Command {
  return addRenderOptions(new Command('submit'), { targetRequired: false })
    .option('-f, --file <file>', 'rendered manifests (a YAML stream, `-` for stdin) instead of the render flags')
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

/** The objects to apply and the warnings to print: from -f as they are, or rendered and admitted. */
async function objectsFromFlags(flags: SubmitFlags): Promise<{ objects: ManifestObject[]; warnings: string[] }> {
  const given = RENDER_ONLY_FLAGS.filter((k) => flags[k] !== undefined)
  if (flags.file) {
    if (given.length) throw new ExitError(`-f ${flags.file} and render flags (--${given.map(kebab).join(', --')}) both given: submit a rendered file, or render from flags, not both`, { path: '--file' })
    const text =
      flags.file === '-'
        ? readFileSync(0, 'utf8')
        : (await readBoundedFile(flags.file, { maxBytes: MAX_MANIFEST_BYTES, flag: '--file', expect: 'manifests written by headroom render -o FILE' })).toString('utf8')
    return { objects: parseManifests(text, flags.file === '-' ? 'stdin' : flags.file), warnings: [] }
  }
  if (!flags.target) throw new ExitError('submit needs -f FILE (rendered manifests) or --target kaito|job with the render flags', { path: '--target' })
  // The renderer refuses a job that does not fit (unless --force) before anything is rendered;
  // admit() below holds the same line for any renderer, so nothing that does not fit is ever sent.
  const rendered = renderManifests(await renderOptionsFrom({ ...flags, target: flags.target }))
  const warnings = admit(rendered.admission, Boolean(flags.force))
  return { objects: rendered.objects as ManifestObject[], warnings }
}

function kebab(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
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
