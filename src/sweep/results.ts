/**
 * A sweep's results: one record per point, the points.json document and the points.csv table
 * (DESIGN.md §2.1e names). Pure.
 */
import type { WeightsMode } from '../runtime/types.ts'
import { SWEEP_FIELDS, type PointFields, type SweepSpec } from './spec.ts'

/** How a point ended: `oom` and `failed` are results too (the sweep goes on); `cancelled` reruns. */
export type PointState = 'succeeded' | 'oom' | 'failed' | 'cancelled'

export type PointResult = {
  index: number
  /** pointKey(fields): what a rerun matches finished points by. */
  key: string
  /** Every field the point set (base and grid). */
  fields: PointFields
  /** The grid's fields only (what differs between points). */
  varied: PointFields
  state: PointState
  /** Why a point failed or ran out of memory, in the trainer's words. */
  message?: string
  /** The run's own prediction at the longest batch it trained (summary.predictedPeakBytes). */
  predictedPeakBytes: number | null
  /** Whether the planner said the point fits the GPU (null on CPU: no memory limit planned). */
  predictedState: 'fits' | 'oom' | null
  /** Peak live tensor bytes (CUDA: max_memory_allocated; CPU: tracked tensors). */
  measuredPeakBytes: number | null
  /** CUDA only: the allocator's largest reservation seen, and the device's used memory (nvml). */
  measuredReservedBytes: number | null
  measuredDeviceUsedBytes: number | null
  /** Median tokens/s over the steps after the first (warm-up), on CPU after the two measured ones when there are more. */
  tokensPerSecond: number | null
  /** The longest batch actually trained, in tokens per sequence. */
  trainedSeq: number | null
  steps: number
  seconds: number
  device: string | null
  runDir: string
  /** Where the run's base weights came from (its start event): `random` ones measure memory and speed, not loss. */
  weights?: 'pretrained' | 'random' | null
}

/** measured / predicted, or null. */
export function ratioOf(p: Pick<PointResult, 'measuredPeakBytes' | 'predictedPeakBytes'>): number | null {
  return p.measuredPeakBytes && p.predictedPeakBytes ? p.measuredPeakBytes / p.predictedPeakBytes : null
}

/** The points.json document. */
export type SweepDoc = {
  version: 1
  spec: SweepSpec
  /** What every point shares beyond its fields; a rerun with another base is refused. */
  baseKey: string
  device: 'cpu' | 'cuda'
  /** The GPU's name and memory when the sweep ran on one (the plots draw it as a line). */
  gpu: { name: string; memoryBytes: number } | null
  /** What the sweep asked the trainer for (train.py --weights); each point's `weights` says what it got. */
  weights?: WeightsMode
  grid: string[]
  points: PointResult[]
  updatedAt: string
}

/** Finished points are kept by a rerun; a cancelled one runs again. */
export function finished(p: PointResult): boolean {
  return p.state !== 'cancelled'
}

/** The median of a list of numbers, or null when empty. */
export function median(xs: number[]): number | null {
  if (!xs.length) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

const CSV_TAIL = ['state', 'predictedPeakBytes', 'measuredPeakBytes', 'tokensPerSecond', 'measuredOverPredicted', 'predictedState', 'measuredReservedBytes', 'measuredDeviceUsedBytes', 'trainedSeq', 'steps', 'seconds', 'weights', 'message'] as const

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return ''
  const s = Array.isArray(v) ? v.join('+') : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(4) : String(v)
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/**
 * points.csv: the point's fields (those any point sets, in table order), then the results.
 * @example toCsv(doc).split('\n')[0] // 'index,method,seq,state,predictedPeakBytes,...'
 */
export function toCsv(doc: SweepDoc): string {
  const fields = SWEEP_FIELDS.filter((f) => doc.points.some((p) => p.fields[f] !== undefined))
  const header = ['index', ...fields, ...CSV_TAIL]
  const rows = doc.points.map((p) => {
    const r = ratioOf(p)
    const tail: Record<(typeof CSV_TAIL)[number], unknown> = {
      state: p.state,
      predictedPeakBytes: p.predictedPeakBytes,
      measuredPeakBytes: p.measuredPeakBytes,
      tokensPerSecond: p.tokensPerSecond,
      measuredOverPredicted: r,
      predictedState: p.predictedState,
      measuredReservedBytes: p.measuredReservedBytes,
      measuredDeviceUsedBytes: p.measuredDeviceUsedBytes,
      trainedSeq: p.trainedSeq,
      steps: p.steps,
      seconds: p.seconds,
      weights: p.weights,
      message: p.message,
    }
    return [p.index, ...fields.map((f) => p.fields[f]), ...CSV_TAIL.map((c) => tail[c])].map(csvCell).join(',')
  })
  return `${[header.join(','), ...rows].join('\n')}\n`
}
