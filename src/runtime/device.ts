/**
 * Which device a run uses, decided before the trainer starts so the planner predicts for the
 * same device the trainer measures. Read from files (no subprocess): the NVIDIA driver's
 * /proc entries and the venv's torch build (the CPU wheel has `cuda = None`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { DeviceChoice } from './trainer-choices.ts'

const NVIDIA_GPUS = '/proc/driver/nvidia/gpus'

/** The GPU model names the driver lists, e.g. `['NVIDIA H100 80GB HBM3']`; empty without a driver. */
export function nvidiaGpuNames(): string[] {
  if (!existsSync(NVIDIA_GPUS)) return []
  const names: string[] = []
  for (const bus of readdirSync(NVIDIA_GPUS)) {
    try {
      const info = readFileSync(join(NVIDIA_GPUS, bus, 'information'), 'utf8')
      const model = /^Model:\s*(.+)$/m.exec(info)
      names.push(model ? model[1].trim() : 'NVIDIA GPU')
    } catch {
      names.push('NVIDIA GPU')
    }
  }
  return names
}

/** True when the venv's torch was built with CUDA (its version.py names a CUDA version). */
export function torchHasCuda(venvDir: string): boolean {
  const lib = join(venvDir, 'lib')
  if (!existsSync(lib)) return false
  for (const py of readdirSync(lib)) {
    const versionFile = join(lib, py, 'site-packages', 'torch', 'version.py')
    if (!existsSync(versionFile)) continue
    return /^cuda(?::[^=]*)?=\s*['"]\d/m.test(readFileSync(versionFile, 'utf8'))
  }
  return false
}

/** `auto` → `cuda` when a GPU and a CUDA build of torch are both present, else `cpu`. */
export function resolveDevice(requested: DeviceChoice | undefined, venvDir: string): 'cpu' | 'cuda' {
  if (requested === 'cpu' || requested === 'cuda') return requested
  return nvidiaGpuNames().length > 0 && torchHasCuda(venvDir) ? 'cuda' : 'cpu'
}
