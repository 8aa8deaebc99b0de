/**
 * The trainer's exit codes (docs/events.md) and the run state each one means.
 * Codes are the contract with python/headroom_runtime/train.py.
 */
import type { RunState } from './events.ts'

export const TRAINER_EXIT = {
  ok: 0,
  badInput: 1,
  internal: 2,
  oom: 3,
  preempted: 4,
  interrupted: 130,
} as const

/**
 * The run state for how the trainer process ended. `signal` is set when the process was
 * killed rather than exiting; `requested` is the signal the supervisor forwarded, if any.
 */
export function stateForExit(code: number | null, signal: NodeJS.Signals | null, requested?: 'SIGTERM' | 'SIGINT'): RunState {
  if (code === TRAINER_EXIT.ok) return 'succeeded'
  if (code === TRAINER_EXIT.oom) return 'oom'
  if (code === TRAINER_EXIT.preempted) return 'preempted'
  if (code === TRAINER_EXIT.interrupted) return 'cancelled'
  if (code !== null) return 'failed'
  // Killed before it could exit on its own: honour what we asked for, else it was external.
  if (signal === 'SIGINT' || requested === 'SIGINT') return 'cancelled'
  if (signal === 'SIGTERM' || requested === 'SIGTERM') return 'preempted'
  return 'failed'
}

/** One line on why a process ended, for logs and error messages. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === 'SIGKILL') return 'the trainer was killed by SIGKILL (often the kernel’s out-of-memory killer: check host memory)'
  if (signal) return `the trainer was killed by ${signal}`
  switch (code) {
    case TRAINER_EXIT.ok:
      return 'the trainer finished'
    case TRAINER_EXIT.badInput:
      return 'the trainer rejected its input (exit 1)'
    case TRAINER_EXIT.internal:
      return 'the trainer crashed (exit 2, a bug in the runtime)'
    case TRAINER_EXIT.oom:
      return 'the trainer ran out of memory (exit 3)'
    case TRAINER_EXIT.preempted:
      return 'the trainer stopped on SIGTERM after writing a checkpoint (exit 4)'
    case TRAINER_EXIT.interrupted:
      return 'the trainer was interrupted (exit 130)'
    default:
      return `the trainer exited with code ${code}`
  }
}
