/**
 * What fits on a GPU with everything else fixed: the longest sequence and the largest
 * micro-batch. Peak memory grows monotonically with both, so a binary search is exact.
 */
import type { PlanInput } from './types.ts'
import { prepareTerms } from './peak.ts'
import { usableMemoryBytes } from './overhead.ts'

/** The most micro-batch the search will propose. */
export const MAX_BATCH = 1024

export type FitOptions = {
  /** Bytes the plan may use per GPU; default what the GPU leaves usable to a process. */
  budgetBytes?: number
}

function budgetOf(input: PlanInput, opts: FitOptions): number | null {
  if (opts.budgetBytes !== undefined) return opts.budgetBytes
  return input.gpu ? usableMemoryBytes(input.gpu) : null
}

/** Largest n in [1, hi] with fits(n), or 0 when even 1 does not fit (peaks grow monotonically in n). */
export function largestFitting(hi: number, fits: (n: number) => boolean): number {
  if (!fits(1)) return 0
  if (fits(hi)) return hi
  let lo = 1
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (fits(mid)) lo = mid
    else hi = mid
  }
  return lo
}

/**
 * Longest sequence (tokens, capped at the model's max_position_embeddings) whose peak fits the
 * budget; 0 when nothing fits, null without a GPU or budget, or in phase load.
 * @example maxSeqLen({ ...input, method: 'lora', attention: 'eager' }) // ≈ 3,100 tokens for Phi-3-mini on an A100-80GB
 */
export function maxSeqLen(input: PlanInput, opts: FitOptions = {}): number | null {
  const budget = budgetOf(input, opts)
  if (budget === null || input.phase === 'load') return null
  const plan = prepareTerms(input)
  return largestFitting(input.model.maxPositionEmbeddings, (seq) => plan.at(input.batch, seq).peakBytes <= budget)
}

/**
 * Largest micro-batch (up to MAX_BATCH) whose peak fits the budget at the input's seq; 0 when
 * batch 1 does not fit, null without a GPU or budget, or in phase load.
 * @example maxBatch({ ...input, seq: 2048 })
 */
export function maxBatch(input: PlanInput, opts: FitOptions = {}): number | null {
  const budget = budgetOf(input, opts)
  if (budget === null || input.phase === 'load') return null
  const plan = prepareTerms(input)
  return largestFitting(MAX_BATCH, (batch) => plan.at(batch, input.seq).peakBytes <= budget)
}
