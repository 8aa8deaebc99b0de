/**
 * Runs a sweep: each point a real short fine-tune through the supervisor (runtime/supervisor.ts
 * startRun, as `headroom tune` does), one after another, with the point's plan fields written
 * into a training_config by the codec. points.json is rewritten after every point, so a Ctrl-C
 * or a crash keeps what finished and a rerun with the same --out skips it.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { stringify as toYaml } from 'yaml'
import { ExitError } from '../errors.ts'
import { findGpu } from '../catalog/index.ts'
import { resolveDevice, nvidiaGpuNames } from '../runtime/device.ts'
import type { TrainerEvent } from '../runtime/events.ts'
import { predictRun } from '../runtime/prediction.ts'
import { runtimePaths } from '../runtime/python-env.ts'
import { startRun } from '../runtime/supervisor.ts'
import type { DeviceChoice, WeightsMode } from '../runtime/trainer-choices.ts'
import { pointInput, pointSections } from './point-config.ts'
import { fitOverhead, rmsError, type CalibrationPoint } from './calibrate.ts'
import { writeProfile, type DeviceProfile } from './profiles.ts'
import { planMemory } from '../planner/plan.ts'
import { EXPANDABLE_SLACK_FRACTION, overheadTerms } from '../planner/overhead.ts'
import { finished, type PointResult, type PointState, type SweepDoc } from './results.ts'
import { DEFAULT_STEPS, expandGrid, pointKey, variedFields, type GridPoint, type SweepSpec } from './spec.ts'

export type SweepOptions = {
  spec: SweepSpec
  /** The spec file's path: relative data paths are read from its directory. */
  specPath: string
  out: string
  steps?: number
  device?: DeviceChoice
  model?: string
  /** train.py --weights for every point; default auto: a model without weights here is built from its config with random ones. */
  weights?: WeightsMode
  /** Progress: a line to draw (overwrite) or print. */
  /** Before each point (done points so far of total; skipped: finished in an earlier run). */
  onPoint?: (p: { done: number; total: number; point: GridPoint; skipped: boolean }) => void
  /** After each training step of the running point. */
  onStep?: (p: { point: GridPoint; step: number; totalSteps: number }) => void
  onPointDone?: (r: PointResult) => void
  onLog?: (line: string) => void
  /** Extra trainer environment (tests). */
  env?: Record<string, string>
}

export type SweepOutcome = { doc: SweepDoc; ran: number; skipped: number; interrupted: boolean }

/** The data path as the trainer should read it: URLs as given, files from the spec's directory. */
function dataPath(spec: SweepSpec, specPath: string): string | undefined {
  if (!spec.data) return undefined
  if (/^[a-z]+:\/\//i.test(spec.data) || isAbsolute(spec.data)) return spec.data
  // Relative to the spec first (examples/sweeps/data/...), else to the working directory.
  const near = resolve(dirname(specPath), spec.data)
  return existsSync(near) ? near : resolve(spec.data)
}

/** What all points share: a rerun into the same --out with another base would mix two experiments. */
function baseKeyOf(spec: SweepSpec, model: string | undefined, data: string | undefined, steps: number, device: string, weights: WeightsMode): string {
  // weights only when not the default, so the sweeps written before --weights existed still resume.
  return JSON.stringify({ model: model ?? 'default', data: data ?? 'default', steps, device, base: pointKey(spec.base), ...(weights !== DEFAULT_WEIGHTS ? { weights } : {}) })
}

/** A sweep measures memory and speed: a model with no weights here is built from its config with random ones (said in report.md). */
export const DEFAULT_WEIGHTS: WeightsMode = 'auto'

function readPrevious(out: string): SweepDoc | null {
  const path = join(out, 'points.json')
  if (!existsSync(path)) return null
  try {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as SweepDoc
    return Array.isArray(doc.points) ? doc : null
  } catch {
    throw new ExitError(`${path} is not a sweep's points.json (it does not parse): choose another --out, or remove the file to start over`, { exitCode: 1, path: '--out' })
  }
}

/** The GPU the sweep runs on, for the plots' memory line. */
function gpuInfo(device: 'cpu' | 'cuda'): SweepDoc['gpu'] {
  if (device !== 'cuda') return null
  const name = nvidiaGpuNames()[0]
  if (!name) return null
  try {
    const g = findGpu(name)
    return { name: g.name, memoryBytes: g.memoryBytes }
  } catch {
    return null
  }
}

export function writeDoc(out: string, doc: SweepDoc): void {
  doc.updatedAt = new Date().toISOString()
  const tmp = join(out, 'points.json.tmp')
  writeFileSync(tmp, `${JSON.stringify(doc, null, 2)}\n`)
  // rename is atomic: a Ctrl-C mid-write never leaves half a points.json.
  writeFileSync(join(out, 'points.json'), readFileSync(tmp))
  rmSync(tmp, { force: true })
}

/**
 * Runs every point not already finished in `out`; resolves when all ran or a Ctrl-C stopped it.
 * @example await runSweep({ spec, specPath: 'seed-batch.yaml', out: 'sweeps/batch' })
 */
export async function runSweep(opts: SweepOptions): Promise<SweepOutcome> {
  const { spec } = opts
  const paths = runtimePaths()
  const device = resolveDevice(opts.device, paths.venvDir)
  const model = opts.model ?? spec.model
  const data = dataPath(spec, opts.specPath)
  const steps = opts.steps ?? spec.steps ?? DEFAULT_STEPS
  const out = resolve(opts.out)
  const weights = opts.weights ?? DEFAULT_WEIGHTS
  const baseKey = baseKeyOf(spec, model, data && relative(process.cwd(), data), steps, device, weights)

  const previous = readPrevious(out)
  if (previous && previous.baseKey !== baseKey) {
    throw new ExitError(
      `${join(opts.out, 'points.json')} holds a sweep with another base (${previous.baseKey}); this one is ${baseKey}. Its points would not compare: choose another --out, or delete ${opts.out} to start over`,
      { exitCode: 1, path: '--out' },
    )
  }
  mkdirSync(join(out, 'runs'), { recursive: true })
  mkdirSync(join(out, 'configs'), { recursive: true })

  // The base config decoded as the trainer runs it on this device: each point changes only its fields.
  const base = await predictRun({ model: model === 'default' ? undefined : model, device })
  const points = expandGrid(spec)
  const doneByKey = new Map((previous?.points ?? []).filter(finished).map((p) => [p.key, p]))
  const doc: SweepDoc = {
    version: 1,
    spec,
    baseKey,
    device,
    gpu: gpuInfo(device),
    weights,
    grid: variedFields(spec),
    points: [],
    updatedAt: '',
  }
  // Earlier points outside this grid stay in the file (a grid can grow between runs).
  const keys = new Set(points.map((p) => pointKey(p.fields)))
  const kept = (previous?.points ?? []).filter((p) => finished(p) && !keys.has(p.key))

  let interrupted = false
  const onInt = () => (interrupted = true)
  process.on('SIGINT', onInt)
  process.on('SIGTERM', onInt)
  let ran = 0
  let skipped = 0
  const results: PointResult[] = []
  const save = () => {
    doc.points = [...results, ...kept].sort((a, b) => a.index - b.index)
    writeDoc(out, doc)
  }
  try {
    for (const point of points) {
      const key = pointKey(point.fields)
      const prior = doneByKey.get(key)
      if (prior) {
        results.push({ ...prior, index: point.index, varied: point.varied })
        skipped += 1
        opts.onPoint?.({ done: results.length, total: points.length, point, skipped: true })
        continue
      }
      if (interrupted) break
      opts.onPoint?.({ done: results.length, total: points.length, point, skipped: false })
      const result = await runPoint(point, { ...opts, out, device, model, data, steps, base, weights })
      if (result.state === 'cancelled') interrupted = true
      results.push(result)
      ran += 1
      opts.onPointDone?.(result)
      save()
    }
  } finally {
    process.off('SIGINT', onInt)
    process.off('SIGTERM', onInt)
  }
  save()
  return { doc, ran, skipped, interrupted }
}

type PointContext = SweepOptions & {
  out: string
  device: 'cpu' | 'cuda'
  model: string | undefined
  data: string | undefined
  steps: number
  weights: WeightsMode
  base: Awaited<ReturnType<typeof predictRun>>
}

async function runPoint(point: GridPoint, ctx: PointContext): Promise<PointResult> {
  const key = pointKey(point.fields)
  const name = String(point.index).padStart(3, '0')
  const configPath = join(ctx.out, 'configs', `${name}.yaml`)
  const runDir = join(ctx.out, 'runs', name)
  const started = Date.now()
  const result: PointResult = {
    index: point.index,
    key,
    fields: point.fields,
    varied: point.varied,
    state: 'failed',
    predictedPeakBytes: null,
    predictedState: null,
    measuredPeakBytes: null,
    measuredReservedBytes: null,
    measuredDeviceUsedBytes: null,
    tokensPerSecond: null,
    trainedSeq: null,
    steps: 0,
    seconds: 0,
    device: null,
    runDir: relative(ctx.out, runDir),
  }
  let written
  try {
    written = pointSections(ctx.base.sections, ctx.base.input, point.fields)
  } catch (err) {
    return { ...result, message: `cannot write this point's training_config: ${(err as Error).message}` }
  }
  const { sections, input } = written
  // Explicit: the trainer would read an unquantized config as LoRA, never as full.
  const method = input.method
  writeFileSync(configPath, `# headroom sweep ${ctx.spec.name}, point ${point.index}: ${key}\n${toYaml({ training_config: sections })}`)
  // A point that did not finish last time starts clean (a finished run directory is never reused).
  rmSync(runDir, { recursive: true, force: true })
  let run
  try {
    run = await startRun(
      { config: configPath, model: ctx.model === 'default' ? undefined : ctx.model, data: ctx.data, output: runDir, maxSteps: ctx.steps, device: ctx.device, method, weights: ctx.weights, env: ctx.env },
      { onProgress: ctx.onLog, forwardSignals: true },
    )
  } catch (err) {
    return { ...result, seconds: (Date.now() - started) / 1000, message: (err as Error).message }
  }
  let reserved = 0
  let deviceUsed = 0
  let lastMessage: string | undefined
  let weights: PointResult['weights'] = null
  run.on('event', (event: TrainerEvent) => {
    if (event.type === 'start') weights = event.weights?.source ?? 'pretrained'
    else if (event.type === 'step') {
      reserved = Math.max(reserved, event.memory.reservedBytes)
      deviceUsed = Math.max(deviceUsed, event.memory.deviceUsedBytes)
      ctx.onStep?.({ point, step: event.step, totalSteps: event.totalSteps })
    } else if (event.type === 'error' || event.type === 'oom') {
      lastMessage = event.message
    }
  })
  const logTail: string[] = []
  run.on('log', (line: string) => {
    logTail.push(line)
    if (logTail.length > 5) logTail.shift()
  })
  const summary = await run.done
  const state: PointState = summary.state === 'succeeded' ? 'succeeded' : summary.state === 'oom' ? 'oom' : summary.state === 'cancelled' || summary.state === 'preempted' ? 'cancelled' : 'failed'
  const plan = run.prediction?.plan
  // The run's own throughput (the summary's: steady steps, python/headroom_runtime/_throughput.py),
  // the figure `tune` prints for the same run.
  const tokensPerSecond = summary.tokensPerSecond ?? null
  return {
    ...result,
    state,
    ...(state !== 'succeeded' ? { message: lastMessage ?? run.record.exit?.reason ?? logTail.at(-1) ?? 'the trainer exited without a result' } : {}),
    predictedPeakBytes: summary.predictedPeakBytes ?? null,
    predictedState: plan && plan.fits !== null ? (plan.fits ? 'fits' : 'oom') : null,
    measuredPeakBytes: summary.measuredPeakBytes,
    measuredReservedBytes: ctx.device === 'cuda' && reserved ? reserved : null,
    measuredDeviceUsedBytes: ctx.device === 'cuda' && deviceUsed ? deviceUsed : null,
    tokensPerSecond,
    trainedSeq: run.record.progress.maxSeqLen,
    steps: summary.steps,
    seconds: (Date.now() - started) / 1000,
    device: summary.device,
    weights,
  }
}

/**
 * Fits the device's overhead terms from a finished sweep in `out` and writes the profile:
 * every measured point is planned again from its own fields at the length it trained, with the
 * published terms and with the fitted ones, through the planner itself.
 * @example await calibrateSweep({ spec, specPath, out: 'sweeps/seed-batch', profile: 'cpu' })
 */
export async function calibrateSweep(opts: { spec: SweepSpec; specPath: string; out: string; profile?: string; model?: string }): Promise<{ profile: DeviceProfile; path: string }> {
  const out = resolve(opts.out)
  const doc = readPrevious(out)
  const measured = (doc?.points ?? []).filter((p) => p.state === 'succeeded' && p.measuredPeakBytes && p.trainedSeq)
  if (!doc || !measured.length) throw new ExitError(`${join(opts.out, 'points.json')} has no measured points to calibrate from: run the sweep first (headroom sweep ${opts.specPath} --out ${opts.out})`, { exitCode: 1, path: '--out' })
  const model = opts.model ?? opts.spec.model
  const base = await predictRun({ model: model === 'default' ? undefined : model, device: doc.device })
  const inputs = measured.map((p) => ({ ...pointInput(base.input, p.fields), seq: p.trainedSeq! }))
  const plans = inputs.map((i) => planMemory(i))
  const published = overheadTerms(doc.device, true, 0, true)
  const points: CalibrationPoint[] = measured.map((p, i) => ({
    measuredPeakBytes: p.measuredPeakBytes!,
    predictedPeakBytes: plans[i].peakAllocatedBytes,
    publishedWorkspaceBytes: published.workspaceBytes,
    churnBytes: plans[i].breakdown.activations + plans[i].breakdown.logits,
    measuredReservedBytes: p.measuredReservedBytes,
    measuredDeviceUsedBytes: p.measuredDeviceUsedBytes,
  }))
  const terms = fitOverhead(points, doc.device, { contextBytes: published.contextBytes, slackFraction: doc.device === 'cuda' ? EXPANDABLE_SLACK_FRACTION : 0 })
  const name = opts.profile ?? (doc.gpu?.name ?? doc.device)
  const overhead = { profile: name, ...terms }
  const after = inputs.map((i) => planMemory({ ...i, overhead }).peakAllocatedBytes)
  const profile: DeviceProfile = {
    name,
    device: doc.device,
    gpu: doc.gpu?.name ?? null,
    fittedAt: new Date().toISOString(),
    sweep: out,
    points: measured.length,
    terms,
    error: {
      before: rmsError(measured.map((p, i) => ({ measured: p.measuredPeakBytes!, predicted: plans[i].peakAllocatedBytes }))),
      after: rmsError(measured.map((p, i) => ({ measured: p.measuredPeakBytes!, predicted: after[i] }))),
    },
  }
  return { profile, path: writeProfile(profile) }
}
