/**
 * The run's one prediction: the planner's peak for the longest batch the run actually trained
 * on (micro-batch x longest padded sequence seen), with the max_length worst case beside it.
 * Computed here, on the supervisor's side, and read by everyone else (the terminal, run.json,
 * the events the server stores, /metrics, the dashboard), so every door shows the same number.
 * A dataset whose rows are shorter than max_length never pays for max_length: comparing the
 * measured peak with the max_length plan reads as a 2x over-prediction that is not one.
 */
import type { RunPrediction } from './prediction.ts'

export class PredictedPeak {
  #prediction: RunPrediction | null
  #longestSeq: number
  #bytes: number | null = null

  /** `longestSeq`: what an earlier process of the same run already trained on (a resume). */
  constructor(prediction: RunPrediction | null, longestSeq = 0) {
    this.#prediction = prediction
    this.#longestSeq = longestSeq
    if (longestSeq > 0) this.#bytes = this.#at(longestSeq)
  }

  /** The planner's worst case at the configured max_length, or null without a prediction. */
  get maxLengthBytes(): number | null {
    return this.#prediction?.record.peakAllocatedBytes ?? null
  }

  /** The prediction for the longest batch seen so far; null before the first batch. */
  get bytes(): number | null {
    return this.#bytes
  }

  /** Longest padded sequence seen so far (tokens), 0 before the first batch. */
  get longestSeq(): number {
    return this.#longestSeq
  }

  /**
   * Records a batch padded to `seq` tokens and returns the (possibly raised) prediction.
   * @example peak.observe(250) // 201_898_816 for the default run's first batch
   */
  observe(seq: number): number | null {
    if (seq > this.#longestSeq) {
      this.#longestSeq = seq
      this.#bytes = this.#at(seq)
    }
    return this.#bytes
  }

  /** The sequence length and breakdown behind `bytes`, for run.json. */
  detail(): { seq: number; peakAllocatedBytes: number; breakdown: Record<string, number> } | null {
    const p = this.#prediction
    if (!p || this.#longestSeq === 0) return null
    const seq = Math.min(this.#longestSeq, p.record.seq)
    return { seq, ...p.atSeq(seq) }
  }

  #at(seq: number): number | null {
    const p = this.#prediction
    if (!p) return null
    // The trainer truncates at max_length: a longer figure would be a batch it never built.
    return seq >= p.record.seq ? p.record.peakAllocatedBytes : p.atSeq(seq).peakAllocatedBytes
  }
}
