/**
 * Headroom's library surface: re-exports only. The CLI and the HTTP server call these same
 * functions and return the same objects.
 * @module
 */
export { ConfigError, ExitError, InternalError, formatIssues } from './errors.ts'
export type { Issue } from './errors.ts'
export { GIB, MIB, GB, BYTES_PER_ELEMENT, formatBytes, formatGiB, formatCount } from './units.ts'
export type { Dtype, Quant } from './units.ts'
export type { ModelArch, Gpu, Hardware, LinearModule, ModelType } from './catalog/types.ts'
export { archFromHfConfig, loadModel, findModelSync, listModels, findHardware, findGpu, listGpus, SKUS, linearModuleNames } from './catalog/index.ts'
export type { HfConfig, LoadModelOptions, Sku } from './catalog/index.ts'
export type { MemoryPlan, PlanInput, Breakdown, PlanWarning } from './planner/types.ts'
export { planMemory, maxSeqLen, maxBatch, maxConcurrentSequences, recommend, planRequest, PLAN_FIELDS, PLAN_DEFAULTS, flagArgs } from './planner/index.ts'
export type { PlanRequest, PlanField, PlanFieldName } from './planner/index.ts'
export { parsePlanRequest, resolvePlanInput, planFromRequest } from './request/index.ts'
export { trainerEvent, parseEventLine, runSummary } from './runtime/events.ts'
export type { TrainerEvent, RunSummary, RunState } from './runtime/events.ts'
export { startRun, ensurePythonEnv, findLastCheckpoint, resolveResume, readRunRecord } from './runtime/index.ts'
export type { RunHandle, TuneOptions, RunRecord } from './runtime/index.ts'
export { parseTuningConfig, loadTuningConfig, checkConfig, toPlanInput, trainingConfigSchema, tuningDocumentSchema, renderTuningConfigMap } from './config/index.ts'
export type { TrainingConfig, ParseResult, CheckOptions, CheckResult } from './config/index.ts'
export { createApp, startServer, reportRun, RunStore, openDb, RunMetrics } from './server/index.ts'
