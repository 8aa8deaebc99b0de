/** Canned events of a 2-rank (FSDP) run, for the server and dashboard tests. */
import type { TrainerEvent } from '../../src/runtime/events.ts'
import { cannedEvents, GIB } from './helpers.ts'

/** cannedEvents for two ranks: rank 1 holds more memory than rank 0 and reports no start/done. */
export function twoRankEvents(steps: number, t0?: number): TrainerEvent[] {
  const out: TrainerEvent[] = []
  for (const e of cannedEvents(steps, t0)) {
    if (e.type === 'start') out.push({ ...e, rank: 0, ranks: 2, parallelism: 'fsdp', perDeviceBatch: 2, gradientAccumulation: 1, effectiveBatch: 4 })
    else if (e.type === 'step') {
      out.push({ ...e, rank: 0 })
      out.push({ ...e, rank: 1, memory: { ...e.memory, allocatedBytes: e.memory.allocatedBytes + GIB, peakAllocatedBytes: Math.round(9.1 * GIB) } })
    } else if (e.type === 'done') {
      out.push({ ...e, rank: 0, summary: { ...e.summary, measuredPeakBytes: Math.round(9.1 * GIB), ranks: 2, measuredPeakBytesPerRank: [Math.round(8.9 * GIB), Math.round(9.1 * GIB)] } })
    }
  }
  return out
}

