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
export type { MemoryPlan, PlanInput, Breakdown, PlanWarning } from './planner/types.ts'
export { trainerEvent, parseEventLine, runSummary } from './runtime/events.ts'
export type { TrainerEvent, RunSummary, RunState } from './runtime/events.ts'
