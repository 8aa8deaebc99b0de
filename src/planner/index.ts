/**
 * The planner's public surface: pure, synchronous memory planning (planMemory), the fit search
 * (maxSeqLen, maxBatch, recommend), and the plan-field table every door derives from. Resolving
 * a request (loading models and config files) lives above, in src/request/.
 * @module
 */
export { planMemory, planWarnings } from './plan.ts'
export { maxSeqLen, maxBatch, MAX_BATCH } from './fit.ts'
export type { FitOptions } from './fit.ts'
export { recommend, searchFit, DEFAULT_SAFETY_MARGIN, RANKS, MAX_RECOMMENDED_BATCH } from './recommend.ts'
export type { RecommendOptions, SearchStats } from './recommend.ts'
export {
  PLAN_FIELDS, PLAN_FIELD_NAMES, PLAN_DEFAULTS, planRequest, planField, fieldName, fieldSetting, flagArgs, planFieldsJson,
  PHASES, METHODS, DTYPES, QUANTS, ATTENTIONS, OPTIMIZERS, DEVICES, PARALLELISMS,
} from './fields.ts'
export type { PlanField, PlanFieldName, PlanRequest, FieldNames, FieldKind } from './fields.ts'
export { memoryTerms, peakBytesOf, prepareTerms } from './peak.ts'
export type { MemoryTerms, PreparedPlan } from './peak.ts'
export { usableMemoryBytes } from './overhead.ts'
export {
  inferenceTerms, prepareInference, inferenceMaxSeqLen, maxConcurrentSequences, kvCacheBytes, kvCacheBytesPerToken,
  MAX_CONCURRENT_SEQUENCES,
} from './inference.ts'
export type { InferenceTerms, PreparedInference } from './inference.ts'
export type * from './types.ts'
