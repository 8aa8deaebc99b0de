/**
 * Where run events arrive, from the local supervisor or from a remote `headroom tune
 * --server`, and where they go: the store (durable, numbered), the metrics (gauges) and
 * the live subscribers (SSE). One path for both sources, so a remote run looks exactly like
 * a local one.
 */
import type { RunHandle, TuneOptions } from '../runtime/types.ts'
import type { RunSummary, TrainerEvent } from '../runtime/events.ts'
import type { RunMetrics } from '../metrics/registry.ts'
import { isTerminal } from '../store/fold.ts'
import type { RunRecord, RunStore, StoredEvent } from '../store/runs.ts'
import { httpError } from './http-error.ts'

/** What a live subscriber hears: a newly stored event, or the end of the run. */
export type LiveMessage = { kind: 'event'; stored: StoredEvent } | { kind: 'end'; run: RunRecord }
type Listener = (message: LiveMessage) => void

export type StartRun = (opts: TuneOptions) => Promise<RunHandle>

export class RunHub {
  readonly #store: RunStore
  readonly #metrics: RunMetrics
  readonly #startRun: () => Promise<StartRun>
  readonly #listeners = new Map<string, Set<Listener>>()
  readonly #handles = new Map<string, RunHandle>()
  readonly #starting = new Set<string>()
  /** The answer to each run's first cancel: later cancels repeat it and signal nothing. */
  readonly #cancelled = new Map<string, RunRecord>()

  constructor(store: RunStore, metrics: RunMetrics, startRun: () => Promise<StartRun>) {
    this.#store = store
    this.#metrics = metrics
    this.#startRun = startRun
  }

  /**
   * Starts a local fine-tune through the supervisor and records it. The supervisor validates
   * the options (a bad config rejects here, before any run row exists).
   */
  async start(opts: TuneOptions & { runId: string }, requestBody: Record<string, unknown>, configText?: string): Promise<RunRecord> {
    // Two requests for one run id must not start two trainers in one output directory.
    if (this.#starting.has(opts.runId) || this.#store.getRun(opts.runId)) throw httpError(409, 'conflict', 'runId', `run ${opts.runId} already exists`)
    this.#starting.add(opts.runId)
    try {
      return await this.#launch(opts, requestBody, configText)
    } finally {
      this.#starting.delete(opts.runId)
    }
  }

  async #launch(opts: TuneOptions & { runId: string }, requestBody: Record<string, unknown>, configText?: string): Promise<RunRecord> {
    const startRun = await this.#startRun()
    // The config text lives in its own table; the options keep what else the client chose.
    const { config: _config, ...options } = requestBody
    const handle = await startRun(opts)
    const created = this.#store.createRun({
      id: handle.id,
      source: 'local',
      outputDir: handle.outputDir,
      options,
      config: configText ?? null,
      // The planner's pre-flight warning, as tune prints it: kept for the answer and the run view.
      warning: handle.warning,
    })
    if (!created) {
      handle.cancel('SIGTERM')
      throw httpError(409, 'conflict', 'runId', `run ${handle.id} already exists`)
    }
    this.#handles.set(handle.id, handle)
    // The trainer's `done` waits for the supervisor's summary: an --auto-fit retry follows an
    // OOM attempt's `done` with a new `start`, and the supervisor's summary (exit-code state,
    // prediction at the longest batch run) is what `tune --json` prints. So a run stores
    // exactly one `done`, last, the same as `headroom tune --server` reports it.
    let heldDone: Extract<TrainerEvent, { type: 'done' }> | undefined
    handle.on('event', (event) => {
      if (event.type === 'done') {
        heldDone = event
        return
      }
      this.#safeRecord(handle.id, [event])
    })
    const ended = (summary: RunSummary) => {
      this.#handles.delete(handle.id)
      const run = this.#safeRecord(handle.id, [{ type: 'done', t: heldDone?.t ?? Date.now(), summary: { ...heldDone?.summary, ...summary } }])
      if (run) this.#publish(handle.id, { kind: 'end', run })
    }
    void handle.done.then(ended, (err: unknown) => {
      process.stderr.write(`headroom server: run ${handle.id} supervisor failed: ${String(err)}\n`)
      ended({ state: 'failed', steps: 0, firstLoss: null, lastLoss: null, adapterDir: null, device: 'cpu', predictedPeakBytes: null, measuredPeakBytes: null })
    })
    return this.#store.getRun(handle.id)!
  }

  /**
   * Stores events reported by a remote run, creating the run on first contact. `firstSeq`
   * makes retries idempotent: events the store already holds are skipped.
   */
  ingest(id: string, events: readonly TrainerEvent[], firstSeq?: number): { accepted: number; run: RunRecord } {
    let run = this.#store.getRun(id)
    if (!run) {
      this.#store.createRun({ id, source: 'remote' })
      run = this.#store.getRun(id)!
    }
    if (run.source === 'local') throw httpError(409, 'conflict', 'id', `run ${id} was started by this server; it does not take reported events`)
    const skip = firstSeq === undefined ? 0 : Math.max(0, run.lastSeq - (firstSeq - 1))
    if (firstSeq !== undefined && firstSeq > run.lastSeq + 1) {
      throw httpError(409, 'sequence_gap', 'firstSeq', `the store holds events up to ${run.lastSeq}; send from ${run.lastSeq + 1}, not ${firstSeq}`)
    }
    const fresh = events.slice(skip)
    if (fresh.length > 0 && isTerminal(run.state)) throw httpError(409, 'conflict', 'id', `run ${id} already ended (${run.state})`)
    if (fresh.length === 0) return { accepted: 0, run }
    const after = this.#record(id, fresh)
    if (isTerminal(after.state)) this.#publish(id, { kind: 'end', run: after })
    return { accepted: fresh.length, run: after }
  }

  /**
   * Asks a local run to stop. SIGINT: the trainer finishes the step, checkpoints and exits as
   * `cancelled` (SIGTERM would read as a preemption).
   */
  cancel(id: string): RunRecord {
    // Idempotent: a second SIGINT would make the trainer stop at once, without the checkpoint
    // the first one asked for. Later cancels get the first one's answer and signal nothing.
    const answered = this.#cancelled.get(id)
    if (answered) return answered
    const run = this.#store.getRun(id)
    if (!run) throw httpError(404, 'not_found', 'id', `no run ${id}`)
    if (isTerminal(run.state)) throw httpError(409, 'conflict', 'id', `run ${id} already ended (${run.state})`)
    const handle = this.#handles.get(id)
    if (!handle) throw httpError(409, 'conflict', 'id', `run ${id} is not running in this server (source: ${run.source}); stop it where it runs`)
    this.#cancelled.set(id, run)
    handle.cancel('SIGINT')
    return run
  }

  /** Listens to a run's live events; returns the unsubscribe function. */
  subscribe(id: string, listener: Listener): () => void {
    let set = this.#listeners.get(id)
    if (!set) this.#listeners.set(id, (set = new Set()))
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0) this.#listeners.delete(id)
    }
  }

  /** Local runs still going. */
  get active(): number {
    return this.#handles.size
  }

  /**
   * Stops every local run and waits for them to finish (up to `timeoutMs`), then ends every
   * live stream so the HTTP server can close. SIGTERM: the runs end `preempted`, with a
   * checkpoint to resume from.
   */
  async shutdown(timeoutMs = 15_000): Promise<void> {
    const pending = [...this.#handles.values()].map((h) => {
      h.cancel('SIGTERM')
      return h.done.catch(() => undefined)
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(pending), new Promise((r) => (timer = setTimeout(r, timeoutMs)))])
    clearTimeout(timer)
    for (const [id] of this.#listeners) {
      const run = this.#store.getRun(id)
      if (run) this.#publish(id, { kind: 'end', run })
    }
  }

  #record(id: string, events: readonly TrainerEvent[]): RunRecord {
    const { stored, run } = this.#store.appendEvents(id, events)
    for (const s of stored) {
      this.#metrics.observe(id, s.event)
      this.#publish(id, { kind: 'event', stored: s })
    }
    return run
  }

  /** Records a local run's events; a storage failure must not throw into the supervisor's emitter. */
  #safeRecord(id: string, events: readonly TrainerEvent[]): RunRecord | undefined {
    try {
      return this.#record(id, events)
    } catch (err) {
      process.stderr.write(`headroom server: could not record an event of run ${id}: ${String(err)}\n`)
      return undefined
    }
  }

  #publish(id: string, message: LiveMessage): void {
    for (const listener of this.#listeners.get(id) ?? []) listener(message)
  }
}
