/**
 * Prometheus metrics for runs, fed by trainer events. Private registries (never prom-client's
 * global one) so two servers in one process, or a test, never share series. A scrape never
 * reads stored samples, and the per-run gauges' text is cached until the next event changes
 * one, so with many stored runs a scrape costs about as much as with none.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { runState, type RunState, type TrainerEvent } from '../runtime/events.ts'
import type { LatestSample } from '../store/runs.ts'

const RUN_LABELS = ['run', 'device'] as const
/** Distributed runs (torchrun): one series per rank beside the run's own (rank 0's) series. */
const RANK_LABELS = ['run', 'device', 'rank'] as const

export type RunMetricsOptions = {
  /** Run counts by state, read at scrape time (the store answers from an index). */
  countRunsByState: () => Partial<Record<RunState, number>>
  /** Node process metrics (process_*, nodejs_*); off in tests that build many registries. */
  processMetrics?: boolean
}

export class RunMetrics {
  /** Per-run gauges: change only when an event arrives. */
  readonly #runs = new Registry()
  /** Run counts and process metrics: change by themselves, serialised every scrape. */
  readonly #live = new Registry()
  #runText: string | undefined
  /** Bumped by every change to a per-run gauge; a text serialised before it is stale. */
  #version = 0
  readonly #devices = new Map<string, string>()
  readonly #g

  constructor(opts: RunMetricsOptions) {
    const r = this.#runs
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: RUN_LABELS, registers: [r] })
    this.#g = {
      allocated: gauge('headroom_memory_allocated_bytes', 'Live tensor bytes at the end of the last step (CUDA memory_allocated).'),
      reserved: gauge('headroom_memory_reserved_bytes', 'Bytes held by the caching allocator at the end of the last step (CUDA memory_reserved).'),
      peak: gauge('headroom_memory_peak_allocated_bytes', 'Peak live tensor bytes since the run started (CUDA max_memory_allocated).'),
      deviceUsed: gauge('headroom_device_memory_used_bytes', 'Device-level used bytes (CUDA: NVML used; CPU: process RSS).'),
      predicted: gauge('headroom_memory_predicted_peak_bytes', "The planner's predicted peak of live tensor bytes for the longest batch the run trained on (batch x longest sequence seen)."),
      predictedMaxLength: gauge('headroom_memory_predicted_max_length_peak_bytes', "The planner's worst-case peak of live tensor bytes at the run's configured max_length."),
      step: gauge('headroom_train_step', 'Last completed optimizer step.'),
      loss: gauge('headroom_train_loss', 'Training loss of the last step.'),
      tps: gauge('headroom_train_tokens_per_second', 'Training throughput of the last step, tokens per second.'),
      rankAllocated: new Gauge({ name: 'headroom_rank_memory_allocated_bytes', help: 'Distributed runs: live tensor bytes at the end of the last step, per rank.', labelNames: RANK_LABELS, registers: [r] }),
      rankPeak: new Gauge({ name: 'headroom_rank_memory_peak_allocated_bytes', help: "Distributed runs: each rank's peak live tensor bytes since the run started (compare with headroom_memory_predicted_peak_bytes, the planner's per-rank figure).", labelNames: RANK_LABELS, registers: [r] }),
      rankDeviceUsed: new Gauge({ name: 'headroom_rank_device_memory_used_bytes', help: 'Distributed runs: device-level used bytes per rank (CUDA: NVML used; CPU: process RSS).', labelNames: RANK_LABELS, registers: [r] }),
    }
    new Gauge({
      name: 'headroom_runs',
      help: 'Runs in the store by state.',
      labelNames: ['state'],
      registers: [this.#live],
      collect() {
        const counts = opts.countRunsByState()
        // Every state is always exported, so a state that empties reads 0 instead of vanishing.
        for (const state of runState.options) this.set({ state }, counts[state] ?? 0)
      },
    })
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.#live })
  }

  /** Updates the run's gauges from one trainer event. */
  observe(runId: string, event: TrainerEvent): void {
    if (event.type === 'start' || event.type === 'step' || event.type === 'done') this.#invalidate()
    if (event.type === 'start') {
      this.#devices.set(runId, event.device)
      if (event.predicted) this.#g.predictedMaxLength.set(this.#labels(runId), event.predicted.peakAllocatedBytes)
      return
    }
    if (event.type === 'done') {
      if (event.summary.predictedPeakBytes != null) this.#g.predicted.set(this.#labels(runId), event.summary.predictedPeakBytes)
      if (event.summary.predictedMaxLengthPeakBytes != null) this.#g.predictedMaxLength.set(this.#labels(runId), event.summary.predictedMaxLengthPeakBytes)
      return
    }
    if (event.type !== 'step') return
    const labels = this.#labels(runId)
    const m = event.memory
    if (event.rank !== undefined) {
      const rankLabels = { ...labels, rank: String(event.rank) }
      this.#g.rankAllocated.set(rankLabels, m.allocatedBytes)
      this.#g.rankPeak.set(rankLabels, m.peakAllocatedBytes)
      this.#g.rankDeviceUsed.set(rankLabels, m.deviceUsedBytes)
      // The run's own series follow rank 0, which reports the run (its loss is all ranks' mean).
      if (event.rank !== 0) return
    }
    this.#g.allocated.set(labels, m.allocatedBytes)
    this.#g.reserved.set(labels, m.reservedBytes)
    this.#g.peak.set(labels, m.peakAllocatedBytes)
    this.#g.deviceUsed.set(labels, m.deviceUsedBytes)
    this.#g.step.set(labels, event.step)
    this.#g.loss.set(labels, event.loss)
    this.#g.tps.set(labels, event.tokensPerSecond)
    if (event.predictedPeakBytes !== undefined) this.#g.predicted.set(labels, event.predictedPeakBytes)
  }

  /** Sets every run's gauges from its newest stored sample (after a restart). */
  restore(latest: readonly LatestSample[]): void {
    this.#invalidate()
    for (const s of latest) {
      if (s.device) this.#devices.set(s.runId, s.device)
      const labels = this.#labels(s.runId)
      this.#g.allocated.set(labels, s.allocatedBytes)
      this.#g.reserved.set(labels, s.reservedBytes)
      this.#g.peak.set(labels, s.peakAllocatedBytes)
      this.#g.deviceUsed.set(labels, s.deviceUsedBytes)
      this.#g.step.set(labels, s.step)
      if (s.loss != null) this.#g.loss.set(labels, s.loss)
      if (s.tokensPerSecond != null) this.#g.tps.set(labels, s.tokensPerSecond)
      if (s.predictedPeakBytes != null) this.#g.predicted.set(labels, s.predictedPeakBytes)
      if (s.predictedMaxLengthPeakBytes != null) this.#g.predictedMaxLength.set(labels, s.predictedMaxLengthPeakBytes)
    }
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    let runText = this.#runText
    if (runText === undefined) {
      const version = this.#version
      runText = await this.#runs.metrics()
      if (version === this.#version) this.#runText = runText
    }
    // Two registries with disjoint metric names: their texts concatenate into one valid exposition.
    return { body: `${runText}\n${await this.#live.metrics()}`, contentType: this.#live.contentType }
  }

  #invalidate(): void {
    this.#version += 1
    this.#runText = undefined
  }

  #labels(runId: string): { run: string; device: string } {
    return { run: runId, device: this.#devices.get(runId) ?? 'unknown' }
  }
}
