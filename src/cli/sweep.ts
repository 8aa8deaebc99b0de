/**
 * `headroom sweep SPEC.yaml`: a grid over plan fields, each point a real short run, measured
 * beside the planner's prediction (DESIGN.md §2.1e). Writes points.json, points.csv, report.md
 * and PNG plots into --out. With --json the last stdout line is points.json's document.
 */
import { Command, Option } from 'commander'
import { writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { ExitError } from '../errors.ts'
import { checkOutputDir, MAX_CONFIG_BYTES, readBoundedFile } from '../files.ts'
import { bar } from '../runtime/progress.ts'
import { formatBytes } from '../units.ts'
import { renderPlots } from '../sweep/plots.ts'
import { reportMarkdown } from '../sweep/report.ts'
import { ratioOf, toCsv, type PointResult } from '../sweep/results.ts'
import { runSweep } from '../sweep/run.ts'
import { DEVICE_CHOICES, WEIGHTS_MODES, type DeviceChoice, type WeightsMode } from '../runtime/trainer-choices.ts'
import { atScale, MAX_STEPS, parseSpec, pointKey } from '../sweep/spec.ts'

type SweepFlags = { out?: string; steps?: number; device?: DeviceChoice; model?: string; weights?: WeightsMode; json?: boolean; calibrate?: boolean; profile?: string }

function stepsArg(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > MAX_STEPS) throw new ExitError(`--steps must be a whole number from 1 to ${MAX_STEPS}, got "${value}"`, { path: '--steps' })
  return n
}

export function command(): Command {
  return new Command('sweep')
    .argument('<spec>', 'sweep spec YAML: a base (model, data, plan fields) and a grid over plan fields (see examples/sweeps/)')
    .option('--out <dir>', 'where points.json, points.csv, report.md and the plots go (default: sweeps/<spec name>); a rerun skips finished points')
    .option('--steps <n>', 'optimizer steps per point (default: the spec’s steps, else 3)', stepsArg)
    .addOption(new Option('--device <device>', 'where to train (default: auto, a GPU when torch can use one)').choices(DEVICE_CHOICES))
    .option('--model <model>', 'catalog model, model directory or hub id for every point (overrides the spec’s model); a spec’s scales entry for it sets the seed’s values')
    .addOption(new Option('--weights <source>', 'auto (default): the model’s real weights when present, else random ones built from its config (memory and tokens/s are the real model’s, the loss means nothing; report.md says so); pretrained: real weights or the point fails; random: always random').choices(WEIGHTS_MODES))
    .option('--json', 'print points.json’s document as the last stdout line')
    .option('--calibrate', 'after the sweep (finished points are not rerun), fit this device’s overhead terms from its points into a profile for plan --device-profile')
    .option('--profile <name>', 'the profile --calibrate writes (default: the GPU’s name, or cpu)')
    .action(async (specPath: string, flags: SweepFlags) => {
      process.exitCode = await sweep(specPath, flags)
    })
}

const gib = (b: number | null) => (b === null ? 'n/a' : formatBytes(b))

async function sweep(specPath: string, flags: SweepFlags): Promise<number> {
  const err = process.stderr
  const text = (await readBoundedFile(specPath, { maxBytes: MAX_CONFIG_BYTES, flag: 'spec', expect: 'a sweep spec YAML file, e.g. examples/sweeps/seed-batch.yaml' })).toString('utf8')
  const parsed = parseSpec(text, specPath)
  const spec = atScale(parsed, flags.model ?? parsed.model)
  // Another model's sweep is another experiment: its own default directory.
  const model = flags.model ?? spec.model
  const out = flags.out ?? join('sweeps', model && model !== 'default' ? `${spec.name}-${basename(model)}` : spec.name)
  await checkOutputDir(out, '--out', { example: `sweeps/${spec.name}` })

  const live = Boolean(err.isTTY)
  let line = ''
  const draw = (s: string) => {
    if (live) err.write(`\r\x1b[2K${s}`)
    line = s
  }
  const clear = () => {
    if (live && line) err.write('\r\x1b[2K')
  }
  let total = 0
  let done = 0
  const outcome = await runSweep({
    spec,
    specPath,
    out,
    steps: flags.steps,
    device: flags.device,
    model: flags.model,
    weights: flags.weights,
    onLog: (l) => {
      clear()
      err.write(`${l}\n`)
    },
    onPoint: ({ done: d, total: t, point, skipped }) => {
      total = t
      done = d
      const what = pointKey(point.varied)
      if (skipped) {
        clear()
        err.write(`headroom: point ${d}/${t} ${what}: finished in an earlier run, skipped\n`)
      } else {
        draw(`point ${d + 1}/${t} ${bar(d, t)} ${what}: starting`)
        if (!live) err.write(`headroom: point ${d + 1}/${t} ${what}: running\n`)
      }
    },
    onStep: ({ point, step, totalSteps }) => draw(`point ${done + 1}/${total} ${bar(done, total)} ${pointKey(point.varied)}: step ${step}/${totalSteps}`),
    onPointDone: (r: PointResult) => {
      clear()
      const ratio = ratioOf(r)
      err.write(
        `headroom: point ${r.index + 1}/${total} ${pointKey(r.varied)}: ${r.state}` +
          (r.state === 'succeeded' ? `, peak ${gib(r.measuredPeakBytes)} measured / ${gib(r.predictedPeakBytes)} predicted (${ratio ? ratio.toFixed(2) : 'n/a'}x), ${r.tokensPerSecond?.toFixed(0) ?? 'n/a'} tok/s, ${r.seconds.toFixed(0)} s` : `: ${r.message ?? ''}`) +
          '\n',
      )
    },
  })
  clear()
  const { doc } = outcome
  writeFileSync(join(out, 'points.csv'), toCsv(doc))
  const plots = await renderPlots(out)
  if (plots.error) err.write(`headroom: warning: the plots were not drawn: ${plots.error}\n`)
  writeFileSync(join(out, 'report.md'), reportMarkdown(doc, plots.files))
  const failed = doc.points.filter((p) => p.state === 'failed')
  err.write(`headroom: sweep ${spec.name}: ${outcome.ran} point(s) run, ${outcome.skipped} skipped as finished earlier; ${out}/report.md, points.csv, points.json${plots.files.length ? `, ${plots.files.join(', ')}` : ''}\n`)
  if (flags.json) process.stdout.write(`${JSON.stringify(doc)}\n`)
  else process.stdout.write(`${join(out, 'report.md')}\n`)
  if (flags.calibrate && !outcome.interrupted) {
    const { calibrateSweep } = await import('../sweep/run.ts')
    const { profile, path } = await calibrateSweep({ spec, specPath, out, profile: flags.profile, model: flags.model })
    const t = profile.terms
    err.write(
      `headroom: calibrated profile ${profile.name} from ${profile.points} point(s): workspace ${formatBytes(t.workspaceBytes)}, context ${formatBytes(t.contextBytes)}, allocator slack ${(t.slackFraction * 100).toFixed(1)}% of the bytes that churn; rms measured - predicted ${formatBytes(profile.error.before)} with the published terms, ${formatBytes(profile.error.after)} calibrated; ${path}; use it with headroom plan --device-profile ${profile.name}\n`,
    )
  }
  if (outcome.interrupted) {
    err.write(`headroom: interrupted; the ${doc.points.filter((p) => p.state !== 'cancelled').length} finished point(s) are kept in ${out}; rerun the same command to continue\n`)
    return 130
  }
  if (failed.length) {
    err.write(`headroom: ${failed.length} point(s) failed: ${failed.map((p) => `${pointKey(p.varied)} (${p.message})`).join('; ')}\n`)
    return 1
  }
  return 0
}
