/**
 * The run store: runs, their configs and predicted plans, the ordered event log (what SSE
 * replays) and one metric sample per training step. Every statement is prepared once;
 * every multi-row write is one transaction.
 */
import type { Db } from './db.ts'
import type { RunState, RunSummary, TrainerEvent } from '../runtime/events.ts'
import { foldEvent, type RunProgress } from './fold.ts'
import { nextState } from '../runtime/lifecycle.ts'

/**
 * local: started by this server; remote: reported with `headroom tune --server`; cluster:
 * followed on Kubernetes with `headroom status --follow` (the column is TEXT: no migration).
 */
export type RunSource = 'local' | 'remote' | 'cluster'

/** A run as the API returns it. Times are Unix epoch milliseconds; sizes are bytes. */
export type RunRecord = RunProgress & {
  id: string
  source: RunSource
  createdAt: number
  updatedAt: number
  outputDir: string | null
  /** What the run was started with (POST /v1/runs body), when this server started it. */
  options: Record<string, unknown> | null
  /** The planner's pre-flight warning when the worst case at max_length exceeds the device (a run started here). */
  warning: string | null
  /** Sequence number of the last stored event (0: none yet). */
  lastSeq: number
}

/** One stored event with its per-run sequence number (the SSE id). */
export type StoredEvent = { seq: number; event: TrainerEvent }

/** One training step's memory and progress, as /metrics and the run view read it. */
export type Sample = {
  step: number
  t: number
  allocatedBytes: number
  reservedBytes: number
  peakAllocatedBytes: number
  deviceUsedBytes: number
  loss: number | null
  tokensPerSecond: number | null
}

/** A run's newest sample next to what /metrics labels it with. */
export type LatestSample = Sample & {
  runId: string
  device: string | null
  predictedPeakBytes: number | null
  predictedMaxLengthPeakBytes: number | null
}

type RunRow = {
  id: string
  state: RunState
  source: RunSource
  created_at: number
  updated_at: number
  device: 'cpu' | 'cuda' | null
  device_name: string | null
  model: string | null
  method: string | null
  total_steps: number | null
  steps: number
  last_loss: number | null
  predicted_peak_bytes: number | null
  predicted_max_length_peak_bytes: number | null
  measured_peak_bytes: number | null
  output_dir: string | null
  options_json: string | null
  warning: string | null
  summary_json: string | null
  last_seq: number
}

type SampleRow = {
  run_id?: string
  step: number
  t: number
  allocated_bytes: number
  reserved_bytes: number
  peak_allocated_bytes: number
  device_used_bytes: number
  loss: number | null
  tokens_per_second: number | null
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    state: row.state,
    source: row.source,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    device: row.device,
    deviceName: row.device_name,
    model: row.model,
    method: row.method,
    totalSteps: row.total_steps,
    steps: row.steps,
    lastLoss: row.last_loss,
    predictedPeakBytes: row.predicted_peak_bytes,
    predictedMaxLengthPeakBytes: row.predicted_max_length_peak_bytes,
    measuredPeakBytes: row.measured_peak_bytes,
    outputDir: row.output_dir,
    options: row.options_json ? (JSON.parse(row.options_json) as Record<string, unknown>) : null,
    warning: row.warning,
    summary: row.summary_json ? (JSON.parse(row.summary_json) as RunProgress['summary']) : null,
    lastSeq: row.last_seq,
  }
}

function toSample(row: SampleRow): Sample {
  return {
    step: row.step,
    t: row.t,
    allocatedBytes: row.allocated_bytes,
    reservedBytes: row.reserved_bytes,
    peakAllocatedBytes: row.peak_allocated_bytes,
    deviceUsedBytes: row.device_used_bytes,
    loss: row.loss,
    tokensPerSecond: row.tokens_per_second,
  }
}

/**
 * Every run's newest sample: one index seek per run (the primary key is (run_id, step)), so
 * the cost grows with the number of runs, never with the number of samples. CROSS JOIN pins
 * runs as the outer loop; with a plain JOIN SQLite chose to scan every sample (680 ms at
 * 100 x 10,000 samples, against 1 ms).
 */
export const LATEST_SAMPLES_SQL = `SELECT r.id AS run_id, r.device, r.predicted_peak_bytes, r.predicted_max_length_peak_bytes, s.*
  FROM runs r CROSS JOIN samples s ON s.run_id = r.id
    AND s.step = (SELECT MAX(step) FROM samples WHERE run_id = r.id)`

export class RunStore {
  readonly #db: Db
  readonly #stmt

  constructor(db: Db) {
    this.#db = db
    this.#stmt = {
      insertRun: db.prepare(
        `INSERT INTO runs (id, state, source, created_at, updated_at, output_dir, options_json, warning)
         VALUES (@id, @state, @source, @now, @now, @outputDir, @optionsJson, @warning)`,
      ),
      getRun: db.prepare(`SELECT * FROM runs WHERE id = ?`),
      listRuns: db.prepare(`SELECT * FROM runs ORDER BY created_at DESC, id DESC LIMIT ?`),
      listRunsByState: db.prepare(`SELECT * FROM runs WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT ?`),
      updateProgress: db.prepare(
        `UPDATE runs SET state = @state, updated_at = @now, device = @device, device_name = @deviceName,
           model = @model, method = @method, total_steps = @totalSteps, steps = @steps, last_loss = @lastLoss,
           predicted_peak_bytes = @predictedPeakBytes, predicted_max_length_peak_bytes = @predictedMaxLengthPeakBytes, measured_peak_bytes = @measuredPeakBytes,
           summary_json = @summaryJson, last_seq = @lastSeq
         WHERE id = @id`,
      ),
      setOutputDir: db.prepare(`UPDATE runs SET output_dir = ?, updated_at = ? WHERE id = ?`),
      upsertConfig: db.prepare(`INSERT OR REPLACE INTO configs (run_id, text) VALUES (?, ?)`),
      // The config the user sent wins over the resolved one the trainer echoes in `start`.
      insertConfigIfAbsent: db.prepare(`INSERT OR IGNORE INTO configs (run_id, text) VALUES (?, ?)`),
      getConfig: db.prepare(`SELECT text FROM configs WHERE run_id = ?`),
      upsertPlan: db.prepare(`INSERT OR REPLACE INTO plans (run_id, plan_json) VALUES (?, ?)`),
      getPlan: db.prepare(`SELECT plan_json FROM plans WHERE run_id = ?`),
      insertEvent: db.prepare(`INSERT INTO events (run_id, seq, type, t, json) VALUES (?, ?, ?, ?, ?)`),
      eventsAfter: db.prepare(`SELECT seq, json FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
      insertSample: db.prepare(
        `INSERT OR REPLACE INTO samples (run_id, step, t, allocated_bytes, reserved_bytes, peak_allocated_bytes,
           device_used_bytes, loss, tokens_per_second) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      samples: db.prepare(`SELECT * FROM samples WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?`),
      latestSamples: db.prepare(LATEST_SAMPLES_SQL),
      countByState: db.prepare(`SELECT state, COUNT(*) AS n FROM runs GROUP BY state`),
      nonTerminal: db.prepare(`SELECT * FROM runs WHERE state IN ('queued', 'running')`),
    }
  }

  /** Creates a run; returns false when the id is taken. */
  createRun(input: {
    id: string
    source: RunSource
    state?: RunState
    outputDir?: string | null
    options?: Record<string, unknown> | null
    config?: string | null
    warning?: string | null
    now?: number
  }): boolean {
    const now = input.now ?? Date.now()
    try {
      this.#db.transaction(() => {
        this.#stmt.insertRun.run({
          id: input.id,
          state: input.state ?? 'queued',
          source: input.source,
          now,
          outputDir: input.outputDir ?? null,
          optionsJson: input.options ? JSON.stringify(input.options) : null,
          warning: input.warning ?? null,
        })
        if (input.config != null) this.#stmt.upsertConfig.run(input.id, input.config)
      })()
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false
      throw err
    }
  }

  getRun(id: string): RunRecord | undefined {
    const row = this.#stmt.getRun.get(id) as RunRow | undefined
    return row && toRecord(row)
  }

  /** Newest first. */
  listRuns(opts: { limit?: number; state?: RunState } = {}): RunRecord[] {
    const limit = opts.limit ?? 100
    const rows = (opts.state ? this.#stmt.listRunsByState.all(opts.state, limit) : this.#stmt.listRuns.all(limit)) as RunRow[]
    return rows.map(toRecord)
  }

  setOutputDir(id: string, dir: string): void {
    this.#stmt.setOutputDir.run(dir, Date.now(), id)
  }

  getConfig(id: string): string | undefined {
    return (this.#stmt.getConfig.get(id) as { text: string } | undefined)?.text
  }

  getPlan(id: string): unknown {
    const row = this.#stmt.getPlan.get(id) as { plan_json: string } | undefined
    return row ? JSON.parse(row.plan_json) : undefined
  }

  /**
   * Appends events in order, numbering them after the run's last one, and folds them into the
   * run row; step events also become samples. One transaction: a reader sees all or none.
   * Returns the stored events with their sequence numbers and the updated run.
   */
  appendEvents(id: string, events: readonly TrainerEvent[], now = Date.now()): { stored: StoredEvent[]; run: RunRecord } {
    return this.#db.transaction(() => {
      const row = this.#stmt.getRun.get(id) as RunRow | undefined
      if (!row) throw new Error(`run ${id} does not exist`)
      const before = toRecord(row)
      let progress: RunProgress = before
      let seq = before.lastSeq
      const stored: StoredEvent[] = []
      for (const event of events) {
        seq += 1
        this.#stmt.insertEvent.run(id, seq, event.type, event.t, JSON.stringify(event))
        // One sample per step (the chart's series): rank 0's, or the one process's; other ranks'
        // memory stays in their events and in the summary's measuredPeakBytesPerRank.
        if (event.type === 'step' && !event.rank) {
          const m = event.memory
          this.#stmt.insertSample.run(id, event.step, event.t, m.allocatedBytes, m.reservedBytes, m.peakAllocatedBytes, m.deviceUsedBytes, event.loss, event.tokensPerSecond)
        }
        if (event.type === 'start' && event.predicted) this.#stmt.upsertPlan.run(id, JSON.stringify(event.predicted))
        if (event.type === 'start') this.#stmt.insertConfigIfAbsent.run(id, JSON.stringify(event.config))
        progress = foldEvent(progress, event)
        stored.push({ seq, event })
      }
      const run: RunRecord = { ...before, ...progress, lastSeq: seq, updatedAt: now }
      this.#writeProgress(run)
      return { stored, run }
    })()
  }

  /**
   * Ends a run that no `done` event will end (its server stopped while it ran), with the
   * given summary; the summary's fields win over what the run row said.
   */
  finish(id: string, summary: RunSummary, now = Date.now()): RunRecord | undefined {
    return this.#db.transaction(() => {
      const run = this.getRun(id)
      if (!run) return undefined
      const done: RunRecord = {
        ...run,
        state: summary.state,
        device: summary.device ?? run.device,
        steps: Math.max(run.steps, summary.steps),
        lastLoss: summary.lastLoss ?? run.lastLoss,
        predictedPeakBytes: summary.predictedPeakBytes ?? run.predictedPeakBytes,
        predictedMaxLengthPeakBytes: summary.predictedMaxLengthPeakBytes ?? run.predictedMaxLengthPeakBytes,
        measuredPeakBytes: summary.measuredPeakBytes ?? run.measuredPeakBytes,
        summary: { ...run.summary, ...summary },
        updatedAt: now,
      }
      this.#writeProgress(done)
      return done
    })()
  }

  /**
   * Marks a run nobody drives any more (its supervisor died with the server that ran it) as
   * `lost`, through the lifecycle's reducer: never shown as running, resumable from its
   * checkpoints with `headroom tune --resume`.
   */
  markLost(id: string, now = Date.now()): RunRecord | undefined {
    return this.#db.transaction(() => {
      const run = this.getRun(id)
      if (!run) return undefined
      const state = nextState(run.state, { type: 'lost' })
      const lost: RunRecord = { ...run, state, summary: run.summary ? { ...run.summary, state } : run.summary, updatedAt: now }
      this.#writeProgress(lost)
      return lost
    })()
  }

  /** Stored events after `seq`, oldest first, at most `limit`. */
  eventsAfter(id: string, seq: number, limit = 1000): StoredEvent[] {
    const rows = this.#stmt.eventsAfter.all(id, seq, limit) as { seq: number; json: string }[]
    return rows.map((r) => ({ seq: r.seq, event: JSON.parse(r.json) as TrainerEvent }))
  }

  /** Samples after `step`, oldest first. */
  samples(id: string, afterStep = 0, limit = 100_000): Sample[] {
    return (this.#stmt.samples.all(id, afterStep, limit) as SampleRow[]).map(toSample)
  }

  /** Bulk insert of samples in one transaction (imports and the /metrics bench). */
  insertSamples(id: string, samples: readonly Sample[]): void {
    this.#db.transaction(() => {
      for (const s of samples) {
        this.#stmt.insertSample.run(id, s.step, s.t, s.allocatedBytes, s.reservedBytes, s.peakAllocatedBytes, s.deviceUsedBytes, s.loss, s.tokensPerSecond)
      }
    })()
  }

  /** Every run's newest sample: what /metrics is rebuilt from after a restart. */
  latestSamples(): LatestSample[] {
    const rows = this.#stmt.latestSamples.all() as (SampleRow & { run_id: string; device: string | null; predicted_peak_bytes: number | null; predicted_max_length_peak_bytes: number | null })[]
    return rows.map((r) => ({
      ...toSample(r),
      runId: r.run_id,
      device: r.device,
      predictedPeakBytes: r.predicted_peak_bytes,
      predictedMaxLengthPeakBytes: r.predicted_max_length_peak_bytes,
    }))
  }

  countByState(): Partial<Record<RunState, number>> {
    const out: Partial<Record<RunState, number>> = {}
    for (const r of this.#stmt.countByState.all() as { state: RunState; n: number }[]) out[r.state] = r.n
    return out
  }

  /** Runs that were queued or running: after a restart nothing is driving local ones any more. */
  unfinished(): RunRecord[] {
    return (this.#stmt.nonTerminal.all() as RunRow[]).map(toRecord)
  }

  #writeProgress(run: RunRecord): void {
    this.#stmt.updateProgress.run({
      id: run.id,
      state: run.state,
      now: run.updatedAt,
      device: run.device,
      deviceName: run.deviceName,
      model: run.model,
      method: run.method,
      totalSteps: run.totalSteps,
      steps: run.steps,
      lastLoss: run.lastLoss,
      predictedPeakBytes: run.predictedPeakBytes,
      predictedMaxLengthPeakBytes: run.predictedMaxLengthPeakBytes,
      measuredPeakBytes: run.measuredPeakBytes,
      summaryJson: run.summary ? JSON.stringify(run.summary) : null,
      lastSeq: run.lastSeq,
    })
  }
}
