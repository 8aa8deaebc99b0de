/**
 * The supervisor: the only place in Headroom that spawns processes. `startRun` turns
 * TuneOptions into one trainer process (python -m headroom_runtime.train), reads its JSON-lines
 * event stream, keeps <output>/run.json current, forwards SIGINT/SIGTERM, and resolves `done`
 * with the run summary. `ensurePythonEnv` builds the project venv when it is missing.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { ConfigError, ExitError } from '../errors.ts'
import { parseEventLine, type RunSummary, type TrainerEvent } from './events.ts'
import type { RunHandle, TuneOptions } from './types.ts'
import { missingCheckpointFiles, resolveResume, resumeRunDir } from './checkpoints.ts'
import { nextState, resumable, settleExit } from './lifecycle.ts'
import { acquireLock, readLock } from './run-lock.ts'
import { resolveDevice } from './device.ts'
import { describeExit, stateForExit } from './exit-codes.ts'
import { runtimePaths, setupCommands, setupNeeds, type RuntimePaths } from './python-env.ts'
import { predictRun, type RunPrediction } from './prediction.ts'
import { writeAutoFitConfig } from './auto-fit.ts'
import { oomAdvice, preflightWarning } from './oom-advice.ts'
import { newRunId } from './run-id.ts'
import { readRunRecord, writeRunRecord, type RunRecord } from './run-record.ts'
import { PredictedPeak } from './predicted-peak.ts'
import { parseWorkerLine, type ReadyEvent, type WorkerRequest } from './serve-events.ts'
import { describeRankFailure, isDistributed, rootCause, torchrunArgs, worldSize } from './torchrun.ts'
import type { DeviceChoice } from './trainer-choices.ts'

/** How the supervisor runs, beyond what the user chose; tests swap the trainer for a fake. */
export type SupervisorOptions = {
  /** Command and leading arguments for the trainer; the trainer flags are appended. */
  trainer?: { command: string; args: string[] }
  /** Forward this process's SIGINT/SIGTERM to the trainer while it runs (default true). */
  forwardSignals?: boolean
  /** Create the venv and default assets when missing (default: true unless `trainer` is set). */
  ensureEnv?: boolean
  /** Set-up progress lines (default: stderr). */
  onProgress?: (line: string) => void
  /** Skip the planner (tests of the event plumbing). */
  predict?: boolean
  paths?: RuntimePaths
}

/**
 * Makes sure `.venv` matches python/requirements.lock and the tiny default model exists,
 * printing one progress line per step. Idempotent: when nothing is missing it runs nothing.
 * @example await ensurePythonEnv({ onProgress: (l) => console.error(l) })
 */
export async function ensurePythonEnv(opts: { paths?: RuntimePaths; onProgress?: (line: string) => void } = {}): Promise<RuntimePaths> {
  const paths = opts.paths ?? runtimePaths()
  const progress = opts.onProgress ?? ((line: string) => process.stderr.write(`${line}\n`))
  for (const step of setupCommands(paths, setupNeeds(paths))) {
    progress(step.label)
    const { code, output } = await runQuiet(step.command, step.args, { ...process.env, ...step.env }, paths.root)
    if (code !== 0) {
      throw new ExitError(`Python runtime set-up failed: \`${step.command} ${step.args.join(' ')}\` exited with ${code}:\n${output.slice(-2000)}\nRun bash scripts/setup.sh to see the full output.`, { exitCode: 1 })
    }
    if (step.stampAfter) copyFileSync(paths.lockFile, paths.stampFile)
  }
  return paths
}

function runQuiet(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    child.on('error', (err) => done({ code: 127, output: `${output}${err.message}` }))
    child.on('close', (code) => done({ code: code ?? 1, output }))
  })
}

/**
 * Runs a Python module of the runtime (e.g. `headroom_runtime.sweep_plots`) to completion with
 * the project's interpreter and PYTHONPATH, collecting its output: for short helper scripts
 * (plots), not for trainers.
 * @example await runPythonModule('headroom_runtime.sweep_plots', ['--dir', 'sweeps/x'])
 */
export async function runPythonModule(module: string, args: string[], opts: { paths?: RuntimePaths } = {}): Promise<{ code: number; output: string }> {
  const paths = opts.paths ?? runtimePaths()
  const env = { ...process.env, PYTHONPATH: [paths.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(':'), PYTHONUNBUFFERED: '1' }
  return runQuiet(paths.python, ['-m', module, ...args], env, process.cwd())
}

/** Steps between run.json rewrites while training; events other than `step` always write. */
const RECORD_INTERVAL_MS = 1000

/** One supervised trainer process (two when --auto-fit retries after an OOM). */
export class SupervisedRun extends EventEmitter implements RunHandle {
  readonly id: string
  readonly outputDir: string
  readonly done: Promise<RunSummary>
  /** The planner's prediction for this run, or null (with `record.predictionError`). */
  prediction: RunPrediction | null = null
  /** Said before the trainer starts when the worst case at max_length exceeds the device (preflightWarning). */
  warning: string | null = null
  /** The run's one predicted peak: at the longest batch trained so far (predicted-peak.ts). */
  peak: PredictedPeak = new PredictedPeak(null)
  /** The last `error` and `oom` events, for the CLI's message. */
  lastError: Extract<TrainerEvent, { type: 'error' }> | null = null
  lastOom: Extract<TrainerEvent, { type: 'oom' }> | null = null
  /** After an OOM: the planner's fix in plain words ("at 6,144 tokens this needs …"). */
  oomAdvice: string | null = null
  /** Set when --auto-fit retried: what changed and the config file it wrote. */
  autoFit: { configPath: string; message: string } | null = null
  readonly record: RunRecord
  /**
   * A resume attempt leaves the record it resumed alone until its trainer has stepped: an
   * attempt that fails while loading must not rewrite the options, state and steps that
   * every later resume reads.
   */
  holdRecord = false
  /** The state the trainer's own `done` reported, if it sent one. */
  reportedState: RunRecord['state'] | null = null
  /** Releases the --output lock; called once the run's end is recorded. */
  releaseLock: () => void = () => {}
  /** Distributed runs: the lowest rank on this node, whose steps drive the progress (rank 0 on node 0). */
  leadRank = 0
  /** The last trainer/torchrun log lines (a distributed run's failure report is there). */
  readonly logTail: string[] = []
  private child: ChildProcess | null = null
  private requested: 'SIGTERM' | 'SIGINT' | undefined
  private signalsSeen = 0
  private lastWrite = 0
  private finish!: (summary: RunSummary) => void

  constructor(id: string, outputDir: string, record: RunRecord) {
    super()
    this.id = id
    this.outputDir = outputDir
    this.record = record
    this.done = new Promise((resolveDone) => (this.finish = resolveDone))
  }

  cancel(signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM'): void {
    this.requested = signal
    this.signalsSeen += 1
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    // A third request means the trainer is stuck in its shutdown: stop waiting for it.
    child.kill(this.signalsSeen >= 3 ? 'SIGKILL' : signal)
  }

  /** @internal */
  attach(child: ChildProcess): void {
    this.child = child
  }

  /** @internal */
  emitLog(line: string): void {
    this.logTail.push(line)
    if (this.logTail.length > 200) this.logTail.shift()
    this.emit('log', line)
  }

  /** @internal */
  emitEvent(event: TrainerEvent): void {
    this.emit('event', event)
  }

  /** @internal */
  saveRecord(force = false): void {
    if (this.holdRecord) return
    const now = Date.now()
    if (!force && now - this.lastWrite < RECORD_INTERVAL_MS) return
    this.lastWrite = now
    // Never claim a checkpoint that is not (or no longer, after save_total_limit) on disk.
    this.record.checkpoints = this.record.checkpoints.filter((c) => missingCheckpointFiles(c.path).length === 0)
    writeRunRecord(this.record)
  }

  /** @internal */
  resolveDone(summary: RunSummary): void {
    this.finish(summary)
  }

  get requestedSignal(): 'SIGTERM' | 'SIGINT' | undefined {
    return this.requested
  }
}

/**
 * Starts a fine-tune and returns at once; follow it with `on('event' | 'log')` and `done`.
 * Rejects only for problems found before the trainer starts (a config file that does not
 * parse, a --resume without checkpoints, a broken Python set-up).
 * @example const run = await startRun({ maxSteps: 10 }); run.on('event', console.log); await run.done
 */
export async function startRun(opts: TuneOptions, sup: SupervisorOptions = {}): Promise<SupervisedRun> {
  const paths = sup.paths ?? runtimePaths()
  if (sup.ensureEnv ?? !sup.trainer) await ensurePythonEnv({ paths, onProgress: sup.onProgress })

  // A finished run is never modified: say so before looking for checkpoints it may still have.
  if (opts.resume) refuseFinished(resumeRunDir(opts.resume), '--resume')
  const resume = opts.resume ? resolveResume(opts.resume) : null
  // A resumed run keeps what it was started with unless the user says otherwise now.
  if (resume) opts = { ...resumableOptions(readRunRecord(resume.runDir)?.options), ...definedOnly(opts) }
  const freshId = opts.runId ?? newRunId()
  const outputDir = resolve(opts.output ?? resume?.runDir ?? join('runs', freshId))
  const device = resolveDevice(opts.device, paths.venvDir)
  // Only a resumed run continues an earlier record; a new run in a used directory starts clean.
  const previous = resume ? readRunRecord(outputDir) : null
  // Resuming into the same directory continues the same run, under its original id.
  const id = opts.runId ?? (resume && typeof previous?.id === 'string' ? previous.id : resume && !opts.output ? basename(outputDir) : freshId)

  let prediction: RunPrediction | null = null
  let predictionError: string | undefined
  if (sup.predict !== false) {
    try {
      prediction = await predictRun({ config: opts.config, model: opts.model, device, method: opts.method, levers: { loss: opts.loss, offloadActivations: opts.offloadActivations, packing: opts.packing }, ranks: worldSize(opts), parallelism: opts.parallelism })
    } catch (err) {
      // A config that does not parse stops the run here, with YAML line numbers; anything
      // else (a model the catalog cannot describe) only costs the prediction.
      if (err instanceof ConfigError) throw err
      predictionError = err instanceof Error ? err.message : String(err)
    }
  }
  // Said before anything starts, so a run that cannot fit its longest batches is not a surprise an hour in.
  const warning = prediction ? preflightWarning(prediction) : null
  if (prediction && warning) {
    prediction.record.warning = warning
    sup.onProgress?.(`headroom: warning: ${warning}`)
  }

  mkdirSync(outputDir, { recursive: true })
  const staleHolder = readLock(outputDir)
  const lock = acquireLock(outputDir, id)
  try {
    return launchRun()
  } catch (err) {
    lock.release()
    throw err
  }

  function launchRun(): SupervisedRun {
    // Holding the lock, nobody else can be writing here: a record that says running was lost.
    if (!resume) refuseFinished(outputDir, '--output')
    if (resume && (previous?.state === 'running' || previous?.state === 'queued')) {
      const who = lock.replaced ?? staleHolder
      sup.onProgress?.(`headroom: run ${id} was lost: its supervisor${who ? ` (pid ${who.pid})` : ''} is gone without recording an end; resuming it from ${basename(resume.checkpoint.path)}`)
    }
    const record: RunRecord = {
      id,
      state: 'running',
      outputDir,
      createdAt: typeof previous?.createdAt === 'string' ? previous.createdAt : new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      device,
      options: recordedOptions(opts),
      ...(resume ? { resumedFrom: resume.checkpoint } : {}),
      prediction: prediction?.record ?? null,
      ...(predictionError ? { predictionError } : {}),
      progress: { step: 0, totalSteps: opts.maxSteps ?? 0, loss: null, tokensPerSecond: null, maxSeqLen: null, memory: null },
      eventCounts: {},
      checkpoints: Array.isArray(previous?.checkpoints) ? previous.checkpoints : [],
      summary: {
        state: 'running',
        steps: 0,
        // A resumed run continues the same loss curve: its first loss is the original's.
        firstLoss: resume && typeof previous?.summary?.firstLoss === 'number' ? previous.summary.firstLoss : null,
        lastLoss: null,
        adapterDir: null,
        device,
        predictedPeakBytes: null,
        predictedMaxLengthPeakBytes: prediction?.record.peakAllocatedBytes ?? null,
        measuredPeakBytes: null,
        ranks: worldSize(opts),
        measuredPeakBytesPerRank: null,
        tokensPerSecond: null,
      },
    }
    const run = new SupervisedRun(id, outputDir, record)
    run.leadRank = (opts.nodeRank ?? 0) * (opts.nproc ?? 1)
    run.releaseLock = lock.release
    run.holdRecord = resume !== null
    run.prediction = prediction
    run.warning = warning
    // A resumed run already trained on its earlier batches: they still count as "seen".
    const seenBefore = resume && typeof previous?.progress?.maxSeqLen === 'number' ? previous.progress.maxSeqLen : 0
    run.peak = new PredictedPeak(prediction, seenBefore)
    record.progress.maxSeqLen = seenBefore || null
    record.summary.predictedPeakBytes = run.peak.bytes
    run.saveRecord(true)

    const launch = (configPath: string | undefined, attempt: number, method = opts.method): void => {
      // The auto-fit retry (attempt 1) runs its config as written, levers included: no lever flag overrides it.
      const args = trainerArgs({ ...opts, method, ...(attempt > 0 ? { loss: undefined, offloadActivations: undefined, packing: undefined } : {}) }, { outputDir, device, configPath, resumeFrom: resume?.checkpoint.path, prediction })
      const distributed = isDistributed(opts)
      // Several ranks: torchrun starts one trainer per rank and forwards our signals to each.
      const trainer = sup.trainer ?? {
        command: paths.python,
        args: distributed ? ['-m', 'torch.distributed.run', ...torchrunArgs(opts), '-m', 'headroom_runtime.train'] : ['-m', 'headroom_runtime.train'],
      }
      const child = spawn(trainer.command, [...trainer.args, ...args], {
        cwd: process.cwd(),
        env: {
          ...process.env,
          PYTHONPATH: [paths.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(':'),
          PYTHONUNBUFFERED: '1',
          HEADROOM_RUN_ID: id,
          ...opts.env,
        },
        // Its own process group: a terminal Ctrl-C reaches only us, and we forward it once.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      run.attach(child)
      record.pid = child.pid
      const unforward = sup.forwardSignals === false ? () => {} : forwardSignals(run)
      const killOnExit = () => child.kill('SIGKILL')
      process.on('exit', killOnExit)

      const stdoutDone = pipeLines(child.stdout!, (line) => onStdout(run, line))
      const stderrDone = pipeLines(child.stderr!, (line) => run.emitLog(line))
      let spawnError: Error | null = null
      child.on('error', (err) => (spawnError = err))
      child.on('close', async (code, signal) => {
        await Promise.all([stdoutDone, stderrDone])
        unforward()
        process.off('exit', killOnExit)
        // torchrun exits 1 for any ending other than success (a rank's exit 4 included): rank 0's
        // own report says what happened; a rank that died is named from torchrun's report.
        const reported = run.reportedState
        const stoppedCleanly = reported === 'preempted' || reported === 'cancelled'
        const failedRank = distributed && code !== 0 && !stoppedCleanly ? rootCause(run.logTail) : null
        const exited = spawnError
          ? 'failed'
          : !distributed || code === 0
            ? stateForExit(code, signal, run.requestedSignal)
            : run.lastOom
              ? 'oom'
              : failedRank
                ? 'failed'
                : reported && reported !== 'succeeded'
                  ? reported
                  : stateForExit(code, signal, run.requestedSignal)
        if (failedRank && !run.lastOom) {
          const last = record.checkpoints.filter((c) => missingCheckpointFiles(c.path).length === 0).map((c) => c.step)
          const message = describeRankFailure(failedRank, outputDir, last.length ? Math.max(...last) : null)
          run.lastError = { type: 'error', t: Date.now(), kind: 'internal', message }
          record.error = { kind: 'internal', message }
        }
        // A SIGTERM that lands after the trainer saved and reported success (during interpreter
        // shutdown) does not undo the success that is on disk.
        const state = settleExit(exited as Parameters<typeof settleExit>[0], run.reportedState, existsSync(join(outputDir, COMPLETED_SENTINEL)))
        const reason = spawnError
          ? `could not start the trainer: ${(spawnError as Error).message}`
          : record.error && failedRank ? record.error.message : describeExit(code, signal)
        if (state === 'oom' && opts.autoFit && attempt === 0 && prediction) {
          const fit = writeAutoFitConfig({ prediction, oom: run.lastOom, outputDir })
          if (fit) {
            run.oomAdvice = oomAdvice(prediction, run.lastOom)
            run.autoFit = { configPath: fit.configPath, message: fit.message }
            run.emitLog(`headroom: out of memory; --auto-fit retries once with the planner's configuration (${fit.message}): ${fit.configPath}`)
            // The retry is a fresh run in the same directory, planned for its new configuration.
            prediction = fit.prediction
            run.prediction = prediction
            run.peak = new PredictedPeak(prediction)
            record.prediction = prediction.record
            record.autoFit = { configPath: fit.configPath, changes: fit.message, firstAttempt: { oom: record.oom, advice: run.oomAdvice } }
            record.summary = { ...record.summary, steps: 0, firstLoss: null, lastLoss: null, measuredPeakBytes: null, predictedPeakBytes: null, predictedMaxLengthPeakBytes: run.peak.maxLengthBytes }
            record.progress = { ...record.progress, step: 0, maxSeqLen: null, memory: null }
            delete record.oom
            record.eventCounts = {}
            run.lastOom = null
            launch(fit.configPath, 1, fit.method)
            return
          }
        }
        finalize(run, state, { code, signal, reason })
      })
    }
    launch(opts.config, 0)
    return run
  }
}

/** Refuses (exit 1) to resume, or to write into, a run directory whose run succeeded. */
function refuseFinished(runDir: string, flag: '--resume' | '--output'): void {
  const previous = readRunRecord(runDir)
  const completed = existsSync(join(runDir, COMPLETED_SENTINEL))
  const state = previous?.state ?? (completed ? 'succeeded' : null)
  // Only success is final; a run that claims to be active is the lock's business (held: refused
  // with its holder named; stale: lost, and resumable).
  if (state !== 'succeeded' && !completed) return
  const verdict = resumable('succeeded')
  if (verdict.ok) return
  const what = `run ${typeof previous?.id === 'string' ? previous.id : basename(runDir)} in ${runDir}`
  throw new ExitError(
    flag === '--resume'
      ? `--resume: ${what} cannot be resumed: ${verdict.reason}; start a new run with another --output to train further`
      : `--output: ${what} already succeeded and a finished run is never modified; choose another --output, or remove the directory to reuse it`,
    { path: flag, exitCode: 1 },
  )
}

/** KAITO's completion marker, written by the trainer last, after the adapter. */
const COMPLETED_SENTINEL = 'fine_tuning_completed.txt'

const RESUMABLE = ['config', 'model', 'data', 'maxSteps', 'device', 'method', 'skipBadRows', 'loss', 'offloadActivations', 'packing', 'nproc', 'parallelism', 'nnodes', 'nodeRank', 'masterAddr', 'masterPort', 'weights'] as const

function resumableOptions(options: unknown): Partial<TuneOptions> {
  if (!options || typeof options !== 'object') return {}
  const picked: Record<string, unknown> = {}
  for (const key of RESUMABLE) if ((options as Record<string, unknown>)[key] !== undefined) picked[key] = (options as Record<string, unknown>)[key]
  return picked as Partial<TuneOptions>
}

/** The options as run.json keeps them: paths made absolute so --resume works from anywhere. */
function recordedOptions(opts: TuneOptions): Record<string, unknown> {
  const absolute = (p: string | undefined) => (p && existsSync(p) ? resolve(p) : p)
  const { env: _env, ...rest } = opts
  return definedOnly({ ...rest, config: absolute(opts.config), model: absolute(opts.model), data: absolute(opts.data) })
}

function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}

function trainerArgs(
  opts: TuneOptions,
  ctx: { outputDir: string; device: 'cpu' | 'cuda'; configPath?: string; resumeFrom?: string; prediction: RunPrediction | null },
): string[] {
  const args = ['--output', ctx.outputDir, '--device', ctx.device]
  if (ctx.configPath) args.push('--config', resolve(ctx.configPath))
  if (opts.model) args.push('--model', existsSync(opts.model) ? resolve(opts.model) : opts.model)
  if (opts.data) args.push('--data', /^[a-z]+:\/\//i.test(opts.data) ? opts.data : resolve(opts.data))
  if (opts.maxSteps !== undefined) args.push('--max-steps', String(opts.maxSteps))
  if (ctx.resumeFrom) args.push('--resume-from', ctx.resumeFrom)
  if (opts.skipBadRows) args.push('--skip-bad-rows')
  if (opts.method && opts.method !== 'auto') args.push('--method', opts.method)
  // The levers (issue 13): train.py's flags of the same names override the config's keys.
  if (opts.loss) args.push('--loss', opts.loss)
  if (opts.offloadActivations) args.push('--offload-activations')
  if (opts.packing) args.push('--packing')
  if (opts.weights && opts.weights !== 'pretrained') args.push('--weights', opts.weights)
  // The max_length worst case: the trainer echoes it; the run's prediction follows its batches.
  if (ctx.prediction) args.push('--predicted-peak-bytes', String(ctx.prediction.record.peakAllocatedBytes))
  if (isDistributed(opts)) args.push('--parallelism', opts.parallelism ?? 'ddp')
  return args
}

function pipeLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): Promise<void> {
  return new Promise((done) => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity })
    lines.on('line', onLine)
    lines.on('close', () => done())
  })
}

function onStdout(run: SupervisedRun, line: string): void {
  const parsed = parseEventLine(line)
  if (parsed.kind === 'log') return run.emitLog(line)
  if (parsed.kind === 'invalid') {
    // Contract drift must be loud: the line still reaches the log, with why it was refused.
    return run.emitLog(`headroom: warning: trainer line does not match the event schema (${parsed.error}): ${line}`)
  }
  const event = withPrediction(run, parsed.event)
  // The resume works: from now on the record is this attempt's.
  if (event.type === 'step') run.holdRecord = false
  if (event.type === 'done') run.reportedState = event.summary.state
  applyEvent(run, event)
  run.emitEvent(event)
  run.saveRecord(event.type !== 'step')
}

/**
 * Stamps the run's one prediction onto the events everyone else reads: each step carries the
 * planner's peak for the longest batch so far, and `done` carries it beside the max_length
 * worst case (the trainer knows only the latter).
 */
function withPrediction(run: SupervisedRun, event: TrainerEvent): TrainerEvent {
  if (event.type === 'step') {
    const bytes = run.prediction ? run.peak.observe(event.seqLen ?? run.prediction.record.seq) : null
    return bytes === null ? event : { ...event, predictedPeakBytes: bytes }
  }
  if (event.type === 'done') {
    return { ...event, summary: { ...event.summary, predictedPeakBytes: run.peak.bytes, predictedMaxLengthPeakBytes: run.peak.maxLengthBytes } }
  }
  return event
}

/** Each rank's peak (summary.measuredPeakBytesPerRank, in rank order; 0 = not reported here, e.g. another node's rank). */
function notePeak(r: RunRecord, rank: number, bytes: number): void {
  const ranks = Math.max(r.summary.ranks ?? 1, rank + 1)
  const peaks = Array.from({ length: ranks }, (_, i) => r.summary.measuredPeakBytesPerRank?.[i] ?? 0)
  peaks[rank] = Math.max(peaks[rank], bytes)
  r.summary.measuredPeakBytesPerRank = peaks
  r.summary.measuredPeakBytes = Math.max(r.summary.measuredPeakBytes ?? 0, bytes)
}

/** Folds one event into the run's record and summary. */
function applyEvent(run: SupervisedRun, event: TrainerEvent): void {
  const r = run.record
  r.eventCounts[event.type] = (r.eventCounts[event.type] ?? 0) + 1
  switch (event.type) {
    case 'start':
      r.device = event.device
      r.summary.device = event.device
      r.progress.totalSteps = event.totalSteps
      return
    case 'step':
      // Every rank reports its memory; the progress (step, loss: all-reduced, the same on every
      // rank) follows one rank, so a 2-rank run is one progress view.
      if (event.rank !== undefined) {
        notePeak(r, event.rank, event.memory.peakAllocatedBytes)
        if (event.rank !== run.leadRank) return
      }
      r.progress.step = event.step
      r.progress.totalSteps = event.totalSteps
      r.progress.loss = event.loss
      r.progress.tokensPerSecond = event.tokensPerSecond
      r.progress.memory = event.memory
      if (event.seqLen !== undefined) r.progress.maxSeqLen = Math.max(r.progress.maxSeqLen ?? 0, event.seqLen)
      r.summary.steps = event.step
      if (r.summary.firstLoss === null) r.summary.firstLoss = event.loss
      r.summary.lastLoss = event.loss
      r.summary.measuredPeakBytes = Math.max(r.summary.measuredPeakBytes ?? 0, event.memory.peakAllocatedBytes)
      if (event.predictedPeakBytes !== undefined) r.summary.predictedPeakBytes = event.predictedPeakBytes
      return
    case 'checkpoint':
      r.checkpoints = [...r.checkpoints.filter((c) => c.path !== event.path), { step: event.step, path: event.path, reason: event.reason }]
      return
    case 'oom':
      run.lastOom = event
      r.oom = { step: event.step, seqLen: event.seqLen, batch: event.batch, message: event.message, tried: event.tried }
      return
    case 'error':
      run.lastError = event
      r.error = { kind: event.kind, message: event.message, ...(event.path ? { path: event.path } : {}) }
      return
    case 'done': {
      const s = event.summary
      r.summary.steps = s.steps
      if (r.summary.firstLoss === null) r.summary.firstLoss = s.firstLoss
      r.summary.lastLoss = s.lastLoss ?? r.summary.lastLoss
      r.summary.adapterDir = s.adapterDir
      r.summary.device = s.device
      if (s.measuredPeakBytes !== null) r.summary.measuredPeakBytes = Math.max(r.summary.measuredPeakBytes ?? 0, s.measuredPeakBytes)
      s.measuredPeakBytesPerRank?.forEach((bytes, rank) => notePeak(r, rank, bytes))
      if (s.tokensPerSecond !== undefined) r.summary.tokensPerSecond = s.tokensPerSecond
      return
    }
    case 'eval':
      return
  }
}

function finalize(run: SupervisedRun, state: RunRecord['state'], exit: { code: number | null; signal: NodeJS.Signals | null; reason: string }): void {
  const r = run.record
  r.state = nextState(r.state, { type: 'exit', state: state as Parameters<typeof settleExit>[0] })
  r.summary.state = r.state
  r.exit = { code: exit.code, signal: exit.signal, reason: exit.reason }
  r.finishedAt = new Date().toISOString()
  if (state === 'succeeded' && r.summary.adapterDir === null && existsSync(join(run.outputDir, 'adapter_config.json'))) {
    r.summary.adapterDir = run.outputDir
  }
  // Only a finished run has an adapter to point at; a checkpoint is not one.
  if (state !== 'succeeded') r.summary.adapterDir = null
  if (state === 'failed' && !r.error) r.error = { kind: 'internal', message: exit.reason }
  if (state === 'oom' && run.prediction && run.lastOom) {
    run.oomAdvice = oomAdvice(run.prediction, run.lastOom)
    if (r.oom && run.oomAdvice) r.oom = { ...r.oom, advice: run.oomAdvice }
  }
  const longest = run.peak.detail()
  if (run.prediction) r.prediction = { ...run.prediction.record, ...(longest ? { atObservedSeq: longest } : {}) }
  r.summary.predictedPeakBytes = run.peak.bytes
  r.summary.predictedMaxLengthPeakBytes = run.peak.maxLengthBytes
  // One process: its peak is rank 0's (a distributed run filled this from every rank's steps).
  if ((r.summary.ranks ?? 1) === 1) r.summary.measuredPeakBytesPerRank = r.summary.measuredPeakBytes !== null ? [r.summary.measuredPeakBytes] : null
  delete r.pid
  run.saveRecord(true)
  run.releaseLock()
  run.resolveDone({ ...r.summary })
}

/** Forwards SIGINT/SIGTERM sent to this process to the trainer; returns the uninstaller. */
function forwardSignals(run: SupervisedRun): () => void {
  const onInt = () => run.cancel('SIGINT')
  const onTerm = () => run.cancel('SIGTERM')
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onTerm)
  return () => {
    process.off('SIGINT', onInt)
    process.off('SIGTERM', onTerm)
  }
}

// ---------------------------------------------------------------------------------------------
// Serving (`headroom serve`): the inference worker, and vLLM's OpenAI server for --engine vllm.

/** What `startServeWorker` runs: the worker's own flags (docs/serve-protocol.md). */
export type ServeWorkerOptions = {
  /** A model dir, hub id or embedded name (`default`); the worker resolves it. */
  model?: string
  adapters?: { name: string; dir: string }[]
  adaptersDir?: string
  device?: DeviceChoice
  maxBatch?: number
  /** Tests swap the worker for a fake: command and leading arguments; the flags are appended. */
  worker?: { command: string; args: string[] }
  /** Create the venv and default assets when missing (default: true unless `worker` is set). */
  ensureEnv?: boolean
  onProgress?: (line: string) => void
  paths?: RuntimePaths
  env?: Record<string, string>
}

export type ServeWorkerExit = {
  code: number | null
  signal: NodeJS.Signals | null
  /** The worker's own last error line without a request id, else how it ended, in words. */
  reason: string
}

/** The worker's flags, in the protocol's names; paths made absolute (the worker's cwd may differ). */
export function serveWorkerArgs(opts: ServeWorkerOptions): string[] {
  const args: string[] = []
  if (opts.model) args.push('--model', existsSync(opts.model) ? resolve(opts.model) : opts.model)
  for (const a of opts.adapters ?? []) args.push('--adapter', `${a.name}=${resolve(a.dir)}`)
  if (opts.adaptersDir) args.push('--adapters-dir', resolve(opts.adaptersDir))
  if (opts.device) args.push('--device', opts.device)
  if (opts.maxBatch !== undefined) args.push('--max-batch', String(opts.maxBatch))
  return args
}

/**
 * One inference worker process. Send it requests with `send`; it emits `event` (a parsed
 * WorkerEvent) and `log` (a stderr line, or a stdout line outside the protocol). `ready`
 * resolves with the worker's ready line, or rejects with its startup error (an ExitError, exit
 * code 1, carrying the worker's own message); `exited` resolves once the process is gone.
 */
export class ServeWorker extends EventEmitter {
  readonly ready: Promise<ReadyEvent>
  readonly exited: Promise<ServeWorkerExit>
  readonly pid: number | undefined
  #child: ChildProcess
  #lastError: string | null = null

  constructor(child: ChildProcess) {
    super()
    this.#child = child
    this.pid = child.pid
    let settleReady!: { resolve: (e: ReadyEvent) => void; reject: (e: Error) => void }
    this.ready = new Promise((res, rej) => (settleReady = { resolve: res, reject: rej }))
    // Nobody may be waiting on `ready` when the worker dies later; that is not an unhandled error.
    this.ready.catch(() => {})
    let isReady = false
    const stderrTail: string[] = []
    const stdoutDone = pipeLines(child.stdout!, (line) => {
      const parsed = parseWorkerLine(line)
      if (parsed.kind === 'log') return this.emit('log', line)
      if (parsed.kind === 'invalid') return this.emit('log', `headroom: warning: worker line does not match the serve protocol (${parsed.error}): ${line}`)
      const event = parsed.event
      if (event.type === 'ready' && !isReady) {
        isReady = true
        settleReady.resolve(event)
      }
      if (event.type === 'error' && event.id === undefined) this.#lastError = event.message
      this.emit('event', event)
    })
    const stderrDone = pipeLines(child.stderr!, (line) => {
      stderrTail.push(line)
      if (stderrTail.length > 20) stderrTail.shift()
      this.emit('log', line)
    })
    let spawnError: Error | null = null
    child.on('error', (err) => (spawnError = err))
    // stdin closes with the process; a write after that must not crash the server.
    child.stdin?.on('error', () => {})
    const killOnExit = () => child.kill('SIGKILL')
    process.on('exit', killOnExit)
    this.exited = new Promise((done) => {
      child.on('close', async (code, signal) => {
        await Promise.all([stdoutDone, stderrDone])
        process.off('exit', killOnExit)
        const lastLog = stderrTail.filter((l) => l.trim()).at(-1)
        const reason = spawnError
          ? `could not start the worker: ${(spawnError as Error).message}`
          : (this.#lastError ?? `${describeExit(code, signal)}${lastLog ? `; last log line: ${lastLog}` : ''}`)
        if (!isReady) settleReady.reject(new ExitError(`the inference worker did not start: ${reason}`, { exitCode: 1 }))
        done({ code, signal, reason })
      })
    })
  }

  /** Writes one request line; false when the worker is gone. */
  send(request: WorkerRequest): boolean {
    const stdin = this.#child.stdin
    if (!stdin || stdin.destroyed || !stdin.writable || this.#child.exitCode !== null || this.#child.signalCode !== null) return false
    stdin.write(`${JSON.stringify(request)}\n`)
    return true
  }

  /** Asks the worker to stop (closing stdin, then SIGTERM), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<ServeWorkerExit> {
    const child = this.#child
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin?.end()
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      timer.unref()
      const exit = await this.exited
      clearTimeout(timer)
      return exit
    }
    return this.exited
  }
}

/**
 * Starts the inference worker; await `worker.ready` before sending requests.
 * @example const w = await startServeWorker({ model: 'default' }); await w.ready; w.send({ id: 'r1', op: 'generate', model: 'tiny-phi3', prompt: 'hi' })
 */
export async function startServeWorker(opts: ServeWorkerOptions = {}): Promise<ServeWorker> {
  const paths = opts.paths ?? runtimePaths()
  if (opts.ensureEnv ?? !opts.worker) await ensurePythonEnv({ paths, onProgress: opts.onProgress })
  const worker = opts.worker ?? { command: paths.python, args: ['-m', 'headroom_runtime.serve'] }
  const child = spawn(worker.command, [...worker.args, ...serveWorkerArgs(opts)], {
    cwd: process.cwd(),
    env: {
      ...process.env,
      PYTHONPATH: [paths.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(':'),
      PYTHONUNBUFFERED: '1',
      ...opts.env,
    },
    // Its own process group: a terminal Ctrl-C reaches the server, which stops the worker once.
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  return new ServeWorker(child)
}

/**
 * Whether the venv can import vLLM, asked of the venv's interpreter (vLLM is not in the lock;
 * a user installs it where there is a GPU).
 */
export async function vllmImportable(paths: RuntimePaths = runtimePaths()): Promise<{ ok: boolean; detail: string }> {
  const { code, output } = await runQuiet(paths.python, ['-c', 'import vllm; print(vllm.__version__)'], process.env, paths.root)
  const last = output.trim().split('\n').at(-1) ?? ''
  return { ok: code === 0, detail: code === 0 ? `vllm ${last}` : last || `exit ${code}` }
}

/**
 * Runs vLLM's OpenAI server in the foreground with the given arguments (serve/engine.ts builds
 * them) and resolves with its exit; SIGINT/SIGTERM are forwarded to it.
 */
export function runVllmServer(args: string[], paths: RuntimePaths = runtimePaths()): Promise<ServeWorkerExit> {
  const child = spawn(paths.python, ['-m', 'vllm.entrypoints.openai.api_server', ...args], { cwd: process.cwd(), stdio: 'inherit', detached: true })
  const forward = (s: NodeJS.Signals) => child.kill(s)
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  return new Promise((done) => {
    let spawnError: Error | null = null
    child.on('error', (err) => (spawnError = err))
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward)
      process.off('SIGTERM', forward)
      done({ code, signal, reason: spawnError ? `could not start vLLM: ${(spawnError as Error).message}` : describeExit(code, signal) })
    })
  })
}
