/**
 * The runtime's public surface: start and follow fine-tunes, find checkpoints, set up the
 * Python environment. Only supervisor.ts spawns processes.
 * @module
 */
export { startRun, ensurePythonEnv, SupervisedRun } from './supervisor.ts'
export type { SupervisorOptions } from './supervisor.ts'
export type { RunHandle, TuneOptions } from './types.ts'
export { findLastCheckpoint, resolveResume, missingCheckpointFiles } from './checkpoints.ts'
export { nextState, resumable, isEnded, LifecycleError } from './lifecycle.ts'
export type { LifecycleAction } from './lifecycle.ts'
export { acquireLock, lockState, readLock } from './run-lock.ts'
export { PredictedPeak } from './predicted-peak.ts'
export { runtimePaths, projectRoot, setupNeeds } from './python-env.ts'
export type { RuntimePaths } from './python-env.ts'
export { resolveDevice } from './device.ts'
export { stateForExit, describeExit, TRAINER_EXIT } from './exit-codes.ts'
export { newRunId } from './run-id.ts'
export { readRunRecord, runRecordPath, observedRunState } from './run-record.ts'
export type { RunRecord, PredictionRecord } from './run-record.ts'
export { predictRun } from './prediction.ts'
export type { RunPrediction } from './prediction.ts'
export { trainerEvent, parseEventLine, runSummary } from './events.ts'
export type { TrainerEvent, RunSummary, RunState } from './events.ts'
