/**
 * How a trainer event changes a run's summary row: a pure function, so the store, the
 * live metrics and the tests agree on what "the state of a run" means.
 */
import type { RunState, RunSummary, TrainerEvent } from '../runtime/events.ts'
import { isEnded, nextState } from '../runtime/lifecycle.ts'

/** The columns of a run that events move. */
export type RunProgress = {
  state: RunState
  device: 'cpu' | 'cuda' | null
  deviceName: string | null
  model: string | null
  method: string | null
  totalSteps: number | null
  steps: number
  lastLoss: number | null
  /** The run's one prediction: the planner's peak at the longest batch trained (the supervisor's figure). */
  predictedPeakBytes: number | null
  /** The planner's worst case at the configured max_length, beside it. */
  predictedMaxLengthPeakBytes: number | null
  measuredPeakBytes: number | null
  summary: (Partial<RunSummary> & { seconds?: number }) | null
}

/** States in which no process drives the run (lifecycle.ts): only a resume changes them again. */
export const TERMINAL_STATES: ReadonlySet<RunState> = new Set(['succeeded', 'failed', 'cancelled', 'oom', 'preempted', 'lost'])

export function isTerminal(state: RunState): boolean {
  return isEnded(state)
}

/**
 * Applies one event. Only `done` (or the supervisor's final summary) ends a run: an `oom`
 * or `error` event may be followed by an auto-fit retry that starts again. State changes go
 * through the lifecycle's reducer, which throws a LifecycleError for a forbidden one.
 */
export function foldEvent(run: RunProgress, event: TrainerEvent): RunProgress {
  switch (event.type) {
    case 'start':
      return {
        ...run,
        state: nextState(run.state, { type: 'start' }),
        device: event.device,
        deviceName: event.deviceName ?? run.deviceName,
        model: event.model.name,
        method: event.method,
        totalSteps: event.totalSteps,
        // `start` knows only the max_length worst case; the run's prediction comes with its batches.
        predictedMaxLengthPeakBytes: event.predicted?.peakAllocatedBytes ?? run.predictedMaxLengthPeakBytes,
      }
    case 'step':
      // Another rank's step: only its memory counts (the loss is all ranks' mean, rank 0 reports it).
      if (event.rank) return { ...run, measuredPeakBytes: Math.max(run.measuredPeakBytes ?? 0, event.memory.peakAllocatedBytes) }
      return {
        ...run,
        state: run.state === 'queued' ? nextState(run.state, { type: 'start' }) : run.state,
        steps: Math.max(run.steps, event.step),
        totalSteps: event.totalSteps || run.totalSteps,
        lastLoss: event.loss,
        predictedPeakBytes: event.predictedPeakBytes ?? run.predictedPeakBytes,
        measuredPeakBytes: Math.max(run.measuredPeakBytes ?? 0, event.memory.peakAllocatedBytes),
      }
    case 'done': {
      const s = event.summary
      return {
        ...run,
        state: nextState(run.state, { type: 'exit', state: exitState(s.state) }),
        device: s.device,
        steps: Math.max(run.steps, s.steps),
        lastLoss: s.lastLoss ?? run.lastLoss,
        predictedPeakBytes: s.predictedPeakBytes ?? run.predictedPeakBytes,
        predictedMaxLengthPeakBytes: s.predictedMaxLengthPeakBytes ?? run.predictedMaxLengthPeakBytes,
        measuredPeakBytes: s.measuredPeakBytes ?? run.measuredPeakBytes,
        summary: s,
      }
    }
    default:
      return run
  }
}

/** A summary's state as an exit: a reporter cannot end a run as queued, running or lost. */
function exitState(state: RunState): Extract<Parameters<typeof nextState>[1], { type: 'exit' }>['state'] {
  return state === 'queued' || state === 'running' || state === 'lost' ? 'failed' : state
}
