/**
 * `headroom render --target kaito|job`: the manifests for a fine-tune on Kubernetes, planned
 * for the instance type first. A job that does not fit exits 1 with the fix named in the
 * ConfigMap's keys and prints nothing on stdout, unless --force. YAML on stdout, or -o FILE.
 */
import { Command } from 'commander'
import { checkOutputFile, writeOutputFile } from '../files.ts'
import { renderManifests } from '../k8s/index.ts'
import { formatGiB } from '../units.ts'
import { addRenderOptions, renderOptionsFrom, type RenderFlags } from './render-flags.ts'

type Flags = RenderFlags & { target: 'kaito' | 'job'; output?: string }

export function command(): Command {
  return addRenderOptions(new Command('render'), { targetRequired: true })
    .option('--force', 'render even when the plan does not fit the GPU (a warning instead of exit 1)')
    .option('-o, --output <file>', 'write the YAML here; - for stdout (default)')
    .action(async (flags: Flags) => {
      const toFile = flags.output !== undefined && flags.output !== '-'
      // Check -o first, so a bad path fails before any planning.
      if (toFile) await checkOutputFile(flags.output!, '-o', { example: './manifests.yaml' })
      const result = renderManifests(await renderOptionsFrom(flags))
      for (const w of result.admission.warnings) process.stderr.write(`headroom: warning: ${w}\n`)
      if (toFile) {
        await writeOutputFile(flags.output!, result.yaml, '-o')
        const a = result.admission
        process.stderr.write(`wrote ${flags.output}: ${result.objects.map((o) => `${String(o.kind)}/${String((o.metadata as { name: string }).name)}`).join(', ')}; peak ${formatGiB(a.peakBytes)} of ${formatGiB(a.gpuMemoryBytes)} per GPU\n`)
      } else process.stdout.write(result.yaml)
    })
}
