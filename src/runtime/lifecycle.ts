/**
 * A run's lifecycle as one pure state machine, shared by the supervisor (run.json) and the
 * server's store, so "what state is this run in" has one answer everywhere.
 *
 *   queued ─start─► running ─exit─► succeeded | failed | cancelled | oom | preempted
 *                      │  ▲
 *                 lost │  │ start (a resume, or --auto-fit's retry)
 *                      ▼  │
 *                     lost, preempted, cancelled, oom, failed
 *
 * `succeeded` is final: its adapter is the run's result and nothing may overwrite it.
 * `lost` is a run whose supervisor is gone without recording an end (SIGKILL, a crashed
 * server): never shown as running, resumable from its newest complete checkpoint.
 */
import type { RunState } from './events.ts'

export type LifecycleAction =
  /** A trainer process starts for the run: the first one, a resume, or an --auto-fit retry. */
  | { type: 'start' }
  /** The trainer process ended; `state` is how (exit code, or the `done` it reported). */
  | { type: 'exit'; state: Exclude<RunState, 'queued' | 'running' | 'lost'> }
  /** Nobody drives the run any more: its supervisor died without recording an end. */
  | { type: 'lost' }

/** Why a transition is refused: the run's state and what was asked. */
export class LifecycleError extends Error {
  constructor(
    readonly from: RunState,
    readonly action: LifecycleAction['type'],
    message: string,
  ) {
    super(message)
  }
}

/** States in which a process is (or should be) working on the run. */
export const ACTIVE_STATES: ReadonlySet<RunState> = new Set(['queued', 'running'])

/** True when the run will not change unless someone resumes it (or, for succeeded, ever). */
export function isEnded(state: RunState): boolean {
  return !ACTIVE_STATES.has(state)
}

/** The run's state after `action`, or a LifecycleError when the lifecycle forbids it. */
export function nextState(state: RunState, action: LifecycleAction): RunState {
  switch (action.type) {
    case 'start':
      if (state === 'succeeded') throw new LifecycleError(state, 'start', 'the run already succeeded; a finished run is never modified')
      return 'running'
    case 'exit':
      if (state === 'succeeded') throw new LifecycleError(state, 'exit', 'the run already succeeded; a finished run is never modified')
      if (state !== 'running' && state !== 'queued') throw new LifecycleError(state, 'exit', `the run is ${state}, not running: nothing is there to end`)
      return action.state
    case 'lost':
      // Only a run that claims to be driven can lose its driver; an ended run stays as it ended.
      return ACTIVE_STATES.has(state) ? 'lost' : state
  }
}

/** Whether `--resume` may continue a run in `state`, and if not, why (in words for the user). */
export function resumable(state: RunState): { ok: true } | { ok: false; reason: string } {
  if (state === 'succeeded') return { ok: false, reason: 'it already succeeded: its adapter is final and is never modified' }
  if (ACTIVE_STATES.has(state)) return { ok: false, reason: `it is ${state}` }
  return { ok: true }
}

/**
 * How a trainer process ended, all things considered: a trainer that reported success and
 * left its completion sentinel succeeded, even when a late SIGTERM killed it during
 * interpreter shutdown (its exit code then reads as a preemption).
 */
export function settleExit(exitState: Exclude<RunState, 'queued' | 'running' | 'lost'>, reported: RunState | null, completeOnDisk: boolean): Exclude<RunState, 'queued' | 'running' | 'lost'> {
  if (reported === 'succeeded' && completeOnDisk) return 'succeeded'
  return exitState
}
