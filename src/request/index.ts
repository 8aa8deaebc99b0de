/**
 * Plan requests: validating the plan fields of `headroom plan` and `POST /v1/plans`, loading
 * the model and --config, and resolving them into the planner's PlanInput. Above planner/
 * because it does I/O; the planner stays pure and synchronous.
 * @module
 */
export { parsePlanRequest, resolvePlanInput, planFromRequest } from './resolve.ts'
export type { ResolveOptions } from './resolve.ts'
