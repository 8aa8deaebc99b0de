/**
 * The admission gate of `headroom submit` from render flags: the renderer (src/k8s/index.ts,
 * renderManifests) plans the job for the instance type; a job that does not fit is refused
 * here before anything is sent to the cluster, unless --force. Pure.
 */
import { ExitError } from '../errors.ts'
import { formatBytes } from '../units.ts'
import type { Admission } from './types.ts'

export type { Admission }

/**
 * Returns the warnings to print, or throws (exit 1) when the job does not fit and --force was
 * not given, naming the fix. With --force a job that does not fit goes with a warning.
 */
export function admit(a: Admission, force: boolean): string[] {
  const need = `predicted peak ${formatBytes(a.peakBytes)} on ${formatBytes(a.gpuMemoryBytes)} of GPU memory`
  const fix = a.fix?.length ? a.fix.join(', ') : 'a smaller max_length, QuantizationConfig.load_in_4bit: true or TrainingArguments.gradient_checkpointing: true'
  if (!a.fits && !force) {
    throw new ExitError(`the job does not fit: ${need}; nothing was sent to the cluster. Set ${fix} (or pass --force to submit it anyway)`, { exitCode: 1, path: 'admission' })
  }
  const warnings = [...a.warnings]
  // The renderer already words its own --force warning; add one only when it did not.
  if (!a.fits && !warnings.some((w) => w.startsWith('--force'))) warnings.push(`--force: submitting a job that does not fit (${need}); it will likely die out of memory. The fix: ${fix}`)
  return warnings
}
