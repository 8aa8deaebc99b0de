/**
 * Prometheus metrics of `headroom serve`, all `headroom_inference_*`, on a registry of their
 * own (never prom-client's global one, so two servers in one process never share series).
 * Latencies are as the worker measured them, from its receipt of a request.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { DoneEvent, WorkerMemory } from '../runtime/serve-events.ts'

/** Seconds; from 5 ms (a cached tiny model on a GPU) to a minute (a long prefill queued behind others). */
const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
/** Seconds per token; vLLM's own histogram uses the same decade steps. */
const TPOT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5]
/** The window the tokens-per-second gauge averages over. */
export const THROUGHPUT_WINDOW_MS = 10_000

export class ServeMetrics {
  readonly registry = new Registry()
  readonly #requests
  readonly #ttft
  readonly #tpot
  readonly #queue
  readonly #running
  readonly #allocated
  readonly #reserved
  /** Finished requests of the last window: when each started and ended, and its tokens. */
  #recent: { startMs: number; endMs: number; tokens: number }[] = []

  constructor(opts: { now?: () => number } = {}) {
    const r = this.registry
    const now = opts.now ?? Date.now
    this.#requests = new Counter({ name: 'headroom_inference_requests_total', help: 'Inference requests answered, by model id and HTTP status.', labelNames: ['model', 'status'], registers: [r] })
    this.#ttft = new Histogram({ name: 'headroom_inference_time_to_first_token_seconds', help: 'Seconds from the worker receiving a request to its first generated token.', labelNames: ['model'], buckets: TTFT_BUCKETS, registers: [r] })
    this.#tpot = new Histogram({ name: 'headroom_inference_time_per_output_token_seconds', help: 'Seconds per generated token after the first (decode latency).', labelNames: ['model'], buckets: TPOT_BUCKETS, registers: [r] })
    const recent = () => {
      const cutoff = now() - THROUGHPUT_WINDOW_MS
      this.#recent = this.#recent.filter((x) => x.endMs >= cutoff)
      return this.#recent
    }
    new Gauge({
      name: 'headroom_inference_tokens_per_second',
      help: `Generated tokens per second over the last ${THROUGHPUT_WINDOW_MS / 1000} s: tokens of requests finished in the window over the wall time they spanned.`,
      registers: [r],
      collect() {
        const xs = recent()
        if (xs.length === 0) return this.set(0)
        const span = (Math.max(...xs.map((x) => x.endMs)) - Math.min(...xs.map((x) => x.startMs))) / 1000
        this.set(span > 0 ? xs.reduce((s, x) => s + x.tokens, 0) / span : 0)
      },
    })
    this.#queue = new Gauge({ name: 'headroom_inference_queue_depth', help: 'Requests waiting in the worker for a batch slot (worker stats).', registers: [r] })
    this.#running = new Gauge({ name: 'headroom_inference_running_sequences', help: 'Sequences the worker is decoding now (worker stats).', registers: [r] })
    this.#allocated = new Gauge({ name: 'headroom_inference_memory_allocated_bytes', help: 'Live tensor bytes of the worker (CUDA memory_allocated; CPU tracked tensor bytes).', registers: [r] })
    this.#reserved = new Gauge({ name: 'headroom_inference_memory_reserved_bytes', help: "Bytes the worker's allocator holds (CUDA memory_reserved).", registers: [r] })
  }

  /**
   * The planner's inference peak for the worker's largest batch. Registered only once there is
   * a prediction: an unset gauge would export a 0 that nobody predicted.
   */
  predicted(bytes: number, at: { batch: number; seq: number }): void {
    const name = 'headroom_inference_memory_predicted_bytes'
    const gauge =
      (this.registry.getSingleMetric(name) as Gauge | undefined) ??
      new Gauge({ name, help: `The planner's predicted peak of live tensor bytes for ${at.batch} sequences of ${at.seq} tokens (headroom plan --phase inference).`, registers: [this.registry] })
    gauge.set(bytes)
  }

  /** Counts one answered request by its HTTP status. */
  answered(model: string, status: number): void {
    this.#requests.inc({ model, status: String(status) })
  }

  /** Records a finished generation's latencies and tokens. */
  generated(model: string, done: DoneEvent, startMs: number, endMs: number): void {
    if (done.ttftSeconds !== undefined) this.#ttft.observe({ model }, done.ttftSeconds)
    const decoded = done.usage.completionTokens - 1
    if (done.ttftSeconds !== undefined && done.seconds !== undefined && decoded > 0) {
      this.#tpot.observe({ model }, Math.max(0, done.seconds - done.ttftSeconds) / decoded)
    }
    this.#recent.push({ startMs, endMs, tokens: done.usage.completionTokens })
  }

  /** The worker's own counts and memory (its `stats` and `ready` lines). */
  workerState(state: { running?: number; waiting?: number; memory?: WorkerMemory }): void {
    if (state.running !== undefined) this.#running.set(state.running)
    if (state.waiting !== undefined) this.#queue.set(state.waiting)
    if (state.memory) {
      this.#allocated.set(state.memory.allocatedBytes)
      this.#reserved.set(state.memory.reservedBytes)
    }
  }

  async text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}
