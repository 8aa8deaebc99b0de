/**
 * `<output>/run.json`: the supervisor's record of one run — state, progress, checkpoints,
 * predicted against measured peak, and the final summary. The trainer may write its own keys
 * into the same file; writes here merge over what is on disk instead of replacing it, and go
 * through a temporary file so a reader never sees half a document.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { RunState, RunSummary } from './events.ts'
import { ACTIVE_STATES, nextState } from './lifecycle.ts'
import { lockState } from './run-lock.ts'

export type MemoryReading = {
  allocatedBytes: number
  reservedBytes: number
  peakAllocatedBytes: number
  deviceUsedBytes: number
  rssBytes?: number
}

export type PredictionRecord = {
  /** Peak live tensor bytes the planner predicts at the configured max_length: the worst case, not the run's prediction. */
  peakAllocatedBytes: number
  /** What the device would show (adds CUDA context and allocator slack; equal on CPU). */
  peakBytes: number
  /** Sequence length and micro-batch the prediction is for. */
  seq: number
  batch: number
  method: string
  device: 'cpu' | 'cuda'
  breakdown: Record<string, number>
  /** The same prediction at the longest batch the trainer actually ran: the run's prediction (summary.predictedPeakBytes). */
  atObservedSeq?: { seq: number; peakAllocatedBytes: number; breakdown: Record<string, number> }
  /** Set when the worst case needs more than the device has (oom-advice.ts preflightWarning), as tune printed it. */
  warning?: string
}

export type RunRecord = {
  id: string
  state: RunState
  outputDir: string
  createdAt: string
  updatedAt: string
  finishedAt?: string
  device: 'cpu' | 'cuda'
  options: Record<string, unknown>
  resumedFrom?: { path: string; step: number }
  pid?: number
  prediction: PredictionRecord | null
  /** Why there is no prediction, when there is none. */
  predictionError?: string
  progress: {
    step: number
    totalSteps: number
    loss: number | null
    tokensPerSecond: number | null
    maxSeqLen: number | null
    memory: MemoryReading | null
  }
  /** How many of each event kind arrived. */
  eventCounts: Record<string, number>
  checkpoints: { step: number; path: string; reason?: string }[]
  error?: { kind: string; message: string; path?: string }
  oom?: { step: number; seqLen: number; batch: number; message: string; tried: string[]; advice?: string }
  /** --auto-fit: the config it wrote, what changed, and how the first attempt failed. */
  autoFit?: { configPath: string; changes: string; firstAttempt: { oom?: RunRecord['oom']; advice: string | null } }
  exit?: { code: number | null; signal: string | null; reason: string }
  summary: RunSummary
}

const SUPERVISOR_KEYS = new Set([
  'id', 'state', 'outputDir', 'createdAt', 'updatedAt', 'finishedAt', 'device', 'options', 'resumedFrom', 'pid', 'prediction',
  'predictionError', 'progress', 'eventCounts', 'checkpoints', 'error', 'oom', 'autoFit', 'exit', 'summary', 'trainer',
])

/** Path of a run's record. */
export function runRecordPath(outputDir: string): string {
  return join(outputDir, 'run.json')
}

/** Reads a run's record, or null when the directory has none (or it is not JSON). */
export function readRunRecord(outputDir: string): (Partial<RunRecord> & Record<string, unknown>) | null {
  const path = runRecordPath(outputDir)
  if (!existsSync(path)) return null
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Partial<RunRecord> & Record<string, unknown>
  } catch {
    return null
  }
}

/**
 * Writes the record. What the trainer wrote into the same file (its own summary, saved file
 * names, MemTracker's breakdown at the peak) is kept under `trainer`, so the top level has one
 * `state` and one summary: the supervisor's.
 */
export function writeRunRecord(record: RunRecord): void {
  const path = runRecordPath(record.outputDir)
  mkdirSync(dirname(path), { recursive: true })
  const onDisk = readRunRecord(record.outputDir) ?? {}
  // No `id` means the trainer replaced the file with its own record: all of it is the trainer's.
  const foreign = Object.fromEntries(
    Object.entries(onDisk).filter(([key]) => onDisk.id === undefined || !SUPERVISOR_KEYS.has(key)),
  )
  const previous = typeof onDisk.trainer === 'object' && onDisk.trainer !== null ? (onDisk.trainer as Record<string, unknown>) : {}
  const trainer = { ...previous, ...foreign }
  const merged = { ...record, ...(Object.keys(trainer).length ? { trainer } : {}), updatedAt: new Date().toISOString() }
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`)
  renameSync(tmp, path)
}

/**
 * The run's state as it really is: what run.json says, except that a run which claims to be
 * queued or running while no live process holds its directory's lock is `lost` (its
 * supervisor was killed). Null when the directory holds no record.
 */
export function observedRunState(outputDir: string): RunState | null {
  const record = readRunRecord(outputDir)
  const state = record?.state
  if (!state) return null
  if (ACTIVE_STATES.has(state) && lockState(outputDir).kind !== 'held') return nextState(state, { type: 'lost' })
  return state
}
