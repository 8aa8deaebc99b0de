/**
 * Fits a device's overhead terms from a sweep's measured points (issue 14: "fit the device's
 * overhead terms (allocator slack, context, workspace) from the sweep"). Pure: each point comes
 * with its measurements and the planner's terms for it.
 *
 * - workspaceBytes: what the allocator holds that the planner's tensors do not (cuBLAS's
 *   workspace on CUDA, 0 published on CPU): the mean of measured - predicted allocated peak,
 *   with the published workspace taken out. The mean offset is the least-squares fit: it never
 *   raises the root-mean-square error of the points it is fitted on (c = published is one
 *   candidate), and lowers it whenever the residuals do not already average to zero.
 * - contextBytes (CUDA): device-used - reserved, the memory no allocator sees (the CUDA context).
 * - slackFraction (CUDA): (reserved - allocated) / the bytes that churn every step.
 */
import { median } from './results.ts'

export type CalibrationPoint = {
  measuredPeakBytes: number
  /** The planner's allocated peak for the point with the published terms. */
  predictedPeakBytes: number
  /** The published workspace inside that prediction (cuBLAS on CUDA, 0 on CPU). */
  publishedWorkspaceBytes: number
  /** Activations + logits: what is allocated and freed every step. */
  churnBytes: number
  measuredReservedBytes: number | null
  measuredDeviceUsedBytes: number | null
}

export type FittedTerms = { contextBytes: number; slackFraction: number; workspaceBytes: number }

/**
 * @example fitOverhead([{ measuredPeakBytes: 110, predictedPeakBytes: 100, publishedWorkspaceBytes: 0, churnBytes: 50, measuredReservedBytes: null, measuredDeviceUsedBytes: null }], 'cpu').workspaceBytes // 10
 */
export function fitOverhead(points: CalibrationPoint[], device: 'cpu' | 'cuda', published: { contextBytes: number; slackFraction: number }): FittedTerms {
  if (!points.length) throw new Error('no measured points to fit')
  const residuals = points.map((p) => p.measuredPeakBytes - (p.predictedPeakBytes - p.publishedWorkspaceBytes))
  const workspaceBytes = Math.round(residuals.reduce((a, b) => a + b, 0) / residuals.length)
  if (device === 'cpu') return { contextBytes: 0, slackFraction: 0, workspaceBytes }
  const ctx = points.filter((p) => p.measuredDeviceUsedBytes && p.measuredReservedBytes).map((p) => p.measuredDeviceUsedBytes! - p.measuredReservedBytes!)
  const slack = points.filter((p) => p.measuredReservedBytes && p.churnBytes > 0).map((p) => Math.max(0, (p.measuredReservedBytes! - p.measuredPeakBytes) / p.churnBytes))
  return {
    contextBytes: ctx.length ? Math.max(0, Math.round(median(ctx)!)) : published.contextBytes,
    slackFraction: slack.length ? median(slack)! : published.slackFraction,
    workspaceBytes,
  }
}

/** Root-mean-square of measured - predicted, bytes. */
export function rmsError(pairs: { measured: number; predicted: number }[]): number {
  return Math.sqrt(pairs.reduce((s, p) => s + (p.measured - p.predicted) ** 2, 0) / Math.max(1, pairs.length))
}
