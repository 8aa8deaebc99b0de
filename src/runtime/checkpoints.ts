/**
 * Finding where a run can continue from: `--resume <run id | run dir | checkpoint dir>`.
 * The trainer writes `checkpoint-<step>` directories into the run's output directory, each
 * under a temporary name and renamed when complete; a directory that lacks a file anyway
 * (made by hand, or cut short by a full disk or another tool) is skipped, never resumed from.
 */
import { existsSync, readdirSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { ExitError } from '../errors.ts'
import { isRunId } from './run-id.ts'

const CHECKPOINT_DIR = /^checkpoint-(\d+)$/

// What python/headroom_runtime/_checkpoint.py save() writes; keep the two lists in step.
const CHECKPOINT_FILES = ['trainer_state.json', 'optimizer.pt', 'scheduler.pt', 'rng_state.pt']
const WEIGHT_FILES = ['adapter_model.safetensors', 'model.safetensors']

/** The files a checkpoint directory lacks to be resumed from (empty when complete). */
export function missingCheckpointFiles(dir: string): string[] {
  const missing = CHECKPOINT_FILES.filter((f) => !existsSync(join(dir, f)))
  if (!WEIGHT_FILES.some((f) => existsSync(join(dir, f)))) missing.push(WEIGHT_FILES.join(' or '))
  return missing
}

/**
 * The complete checkpoint with the highest step in `runDir`, or null when there is none.
 * @example findLastCheckpoint('runs/20261125-221503-3f9a1c') // { path: '.../checkpoint-20', step: 20 }
 */
export function findLastCheckpoint(runDir: string): { path: string; step: number } | null {
  if (!existsSync(runDir)) return null
  let best: { path: string; step: number } | null = null
  for (const name of readdirSync(runDir)) {
    const match = CHECKPOINT_DIR.exec(name)
    if (!match) continue
    const path = join(runDir, name)
    if (!statSync(path).isDirectory() || missingCheckpointFiles(path).length > 0) continue
    const step = Number(match[1])
    if (!best || step > best.step) best = { path, step }
  }
  return best
}

/** The run directory `--resume` names (a run id, a run directory, or one of its checkpoints), without checking it. */
export function resumeRunDir(ref: string, runsDir = resolve('runs')): string {
  let runDir = resolve(ref)
  if (!existsSync(runDir) && isRunId(ref)) runDir = join(runsDir, ref)
  return CHECKPOINT_DIR.test(basename(runDir)) ? resolve(runDir, '..') : runDir
}

/**
 * Resolves what `--resume` names to the run directory and its last checkpoint. A bare run id
 * is looked up under `runsDir` (default `runs/` in the working directory).
 */
export function resolveResume(ref: string, runsDir = resolve('runs')): { runDir: string; checkpoint: { path: string; step: number } } {
  let runDir = resolve(ref)
  if (!existsSync(runDir) && isRunId(ref)) runDir = join(runsDir, ref)
  if (!existsSync(runDir)) {
    throw new ExitError(`--resume: no run directory ${ref} (looked in ${runDir}); pass a run id from runs/ or a run directory`, {
      path: '--resume',
    })
  }
  // A checkpoint directory itself is accepted too: its parent is the run.
  if (CHECKPOINT_DIR.test(basename(runDir))) {
    const missing = missingCheckpointFiles(runDir)
    if (missing.length) {
      throw new ExitError(`--resume: checkpoint ${runDir} is incomplete (no ${missing.join(', ')}); pass the run directory to resume from its newest complete checkpoint`, { path: '--resume', exitCode: 1 })
    }
    return { runDir: resolve(runDir, '..'), checkpoint: { path: runDir, step: Number(CHECKPOINT_DIR.exec(basename(runDir))![1]) } }
  }
  const checkpoint = findLastCheckpoint(runDir)
  if (!checkpoint) {
    throw new ExitError(`--resume: ${runDir} has no complete checkpoint-N directory to continue from; set TrainingArguments.save_strategy: steps or stop the run with SIGTERM, which writes one`, {
      path: '--resume',
      exitCode: 1,
    })
  }
  return { runDir, checkpoint }
}
