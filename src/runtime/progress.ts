/**
 * What `headroom tune` shows while a run goes and when it ends: pure formatting of step
 * events and summaries, so the CLI, tests and the server render the same words.
 */
import { formatBytes, formatCount } from '../units.ts'
import type { RunSummary, StepEvent } from './events.ts'

const BAR_WIDTH = 24

/** A fixed-width bar, e.g. `[██████░░░░░░]` for 50%. */
export function bar(done: number, total: number, width = BAR_WIDTH): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0
  const filled = Math.round(fraction * width)
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`
}

/** measured / predicted as `0.93x`, or `n/a` when either is missing. */
export function ratio(measured: number | null | undefined, predicted: number | null | undefined): string {
  if (!measured || !predicted) return 'n/a'
  return `${(measured / predicted).toFixed(2)}x`
}

/**
 * One progress line for a step: step/total, loss, tokens/s, peak memory measured against
 * predicted. `predictedBytes` is the planner's peak for the batch shape seen so far.
 * @example progressLine(step, 41e6) // 'step 37/100 [█████…] loss 4.213 · 1,234 tok/s · peak 39.9 MiB / predicted 39.1 MiB (1.02x)'
 */
export function progressLine(step: StepEvent, predictedBytes: number | null, withBar = true): string {
  const parts = [
    `step ${step.step}/${step.totalSteps}${withBar ? ` ${bar(step.step, step.totalSteps)}` : ''}`,
    `loss ${step.loss.toFixed(3)}`,
    `${formatCount(step.tokensPerSecond)} tok/s`,
    `peak ${formatBytes(step.memory.peakAllocatedBytes)}${predictedBytes ? ` / predicted ${formatBytes(predictedBytes)} (${ratio(step.memory.peakAllocatedBytes, predictedBytes)})` : ''}`,
  ]
  return parts.join(' · ')
}

/** How often a non-TTY run prints a line: about ten lines per run, never fewer than one step apart. */
export function logEvery(totalSteps: number): number {
  return Math.max(1, Math.round(totalSteps / 10))
}

/** The closing report of a finished run, one fact per line. */
export function summaryLines(summary: RunSummary, extra: { predictedAt?: string; runDir: string; seconds?: number }): string[] {
  const lines: string[] = []
  lines.push(`run ${summary.state} after ${summary.steps} steps on ${summary.device}${extra.seconds !== undefined ? ` in ${extra.seconds.toFixed(1)} s` : ''}`)
  if (summary.firstLoss !== null && summary.lastLoss !== null) {
    const drop = summary.firstLoss !== 0 ? ` (${((summary.lastLoss / summary.firstLoss) * 100).toFixed(0)}% of the first)` : ''
    lines.push(`loss: first ${summary.firstLoss.toFixed(4)}, last ${summary.lastLoss.toFixed(4)}${drop}`)
  }
  const predicted = summary.predictedPeakBytes
  const measured = summary.measuredPeakBytes
  lines.push(
    `peak memory (allocated tensor bytes): predicted ${predicted !== null ? `${formatBytes(predicted)} (${formatCount(predicted)} B)` : 'n/a'}${extra.predictedAt ? ` ${extra.predictedAt}` : ''}, measured ${measured !== null ? `${formatBytes(measured)} (${formatCount(measured)} B)` : 'n/a'}, measured/predicted ${ratio(measured, predicted)}`,
  )
  const perRank = summary.measuredPeakBytesPerRank
  if (summary.ranks !== undefined && summary.ranks > 1 && perRank) {
    lines.push(`peak per rank: ${perRank.map((b, rank) => `rank ${rank} ${b ? `${formatBytes(b)} (${ratio(b, predicted)})` : 'n/a (another node)'}`).join(', ')}; predicted ${predicted !== null ? formatBytes(predicted) : 'n/a'} each`)
  }
  if (typeof summary.tokensPerSecond === 'number') lines.push(`throughput: ${formatCount(summary.tokensPerSecond)} tok/s (non-padding tokens, steady steps)`)
  if (summary.adapterDir) lines.push(`adapter: ${summary.adapterDir}`)
  lines.push(`run directory: ${extra.runDir}`)
  return lines
}
