/**
 * The planner's public surface: pure, synchronous memory planning (planMemory), the fit search
 * (maxSeqLen, maxBatch, recommend), and the request layer that resolves plan flags or a JSON
 * body into a PlanInput (planRequest, resolvePlanInput, planFromRequest).
 * @module
 */
export { planMemory } from './plan.ts'
export { maxSeqLen, maxBatch, MAX_BATCH } from './fit.ts'
export type { FitOptions } from './fit.ts'
export { recommend, searchFit, DEFAULT_SAFETY_MARGIN, RANKS, MAX_RECOMMENDED_BATCH } from './recommend.ts'
export type { RecommendOptions, SearchStats } from './recommend.ts'
export { planRequest, parsePlanRequest, resolvePlanInput, planFromRequest, fieldName, PLAN_DEFAULTS } from './request.ts'
export type { PlanRequest, ResolveOptions, FieldNames } from './request.ts'
export { memoryTerms, peakBytesOf, prepareTerms } from './peak.ts'
export type { MemoryTerms, PreparedPlan } from './peak.ts'
export { usableMemoryBytes } from './overhead.ts'
export type * from './types.ts'
