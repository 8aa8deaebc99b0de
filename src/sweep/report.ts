/**
 * report.md for a sweep: the findings in words, computed from the points (each figure links to
 * its row of the table), the plots, and the table. Pure: a SweepDoc in, markdown out.
 */
import { formatBytes } from '../units.ts'
import { ratioOf, type PointResult, type SweepDoc } from './results.ts'
import { pointKey, type PointFields, type SweepField } from './spec.ts'

/** The planner is held to this on every point (issue 14): |measured / predicted - 1| <= 10%. */
export const TOLERANCE = 0.1

const ok = (p: PointResult) => p.state === 'succeeded' && p.measuredPeakBytes !== null
const anchor = (p: PointResult) => `p${p.index}`
/** A figure linked to its point's row. */
const fig = (p: PointResult, text: string) => `[${text}](#${anchor(p)})`
const mem = (p: PointResult) => fig(p, formatBytes(p.measuredPeakBytes ?? 0))
const val = (v: unknown) => (Array.isArray(v) ? v.join('+') : String(v))
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`

/**
 * Fields whose value follows `field`'s at every point (a listed-points spec that ties
 * gradient checkpointing to the method, as KAITO does): they go with it, not into the groups.
 */
function followers(points: PointResult[], field: SweepField): SweepField[] {
  const others = new Set(points.flatMap((p) => Object.keys(p.varied) as SweepField[]).filter((k) => k !== field))
  return [...others].filter((g) => {
    const seen = new Map<string, string>()
    const values = new Set<string>()
    for (const p of points) {
      const f = val(p.varied[field])
      const v = val(p.varied[g])
      values.add(v)
      if (seen.has(f) && seen.get(f) !== v) return false
      seen.set(f, v)
    }
    return values.size > 1
  })
}

/** Points grouped by every grid field but `field` (one group per line or bar set). */
function groups(points: PointResult[], field: SweepField): Map<string, PointResult[]> {
  const out = new Map<string, PointResult[]>()
  const tied = followers(points, field)
  for (const p of points) {
    if (!(field in p.varied)) continue
    const rest: PointFields = { ...p.varied }
    delete rest[field]
    for (const t of tied) delete rest[t]
    const k = pointKey(rest)
    out.set(k, [...(out.get(k) ?? []), p])
  }
  return out
}

const where = (ctx: string) => (ctx ? ` (${ctx.replace(/,/g, ', ')})` : '')

/** Findings, one sentence each, for the fields the grid varies. */
export function findings(doc: SweepDoc): string[] {
  const pts = doc.points.filter(ok)
  const out: string[] = []
  const ratios = pts.map((p) => ({ p, r: ratioOf(p) })).filter((x): x is { p: PointResult; r: number } => x.r !== null)
  if (ratios.length) {
    const worst = ratios.reduce((a, b) => (Math.abs(b.r - 1) > Math.abs(a.r - 1) ? b : a))
    const within = ratios.filter((x) => Math.abs(x.r - 1) <= TOLERANCE).length
    out.push(
      `Prediction against measurement: ${within} of ${ratios.length} measured points within ${TOLERANCE * 100}%; the farthest is point ${worst.p.index} (${pointKey(worst.p.varied)}): ${fig(worst.p, `${formatBytes(worst.p.measuredPeakBytes!)} measured vs ${formatBytes(worst.p.predictedPeakBytes!)} predicted, ${worst.r.toFixed(2)}x`)}.`,
    )
  }
  const failed = doc.points.filter((p) => !ok(p))
  if (failed.length) out.push(`Not measured: ${failed.map((p) => fig(p, `point ${p.index} ${p.state}`)).join(', ')}.`)

  const grid = doc.grid as SweepField[]
  for (const [i, field] of grid.entries()) {
    // A field tied to an earlier one (checkpointing set by the method) was said with it.
    if (grid.slice(0, i).some((g) => followers(pts, g).includes(field))) continue
    if (field === 'method') out.push(...methodFindings(pts))
    else if (field === 'rank') out.push(...rankFindings(pts))
    else if (field === 'batch') out.push(...batchFindings(pts))
    else if (field === 'targets') out.push(...targetFindings(pts))
    else if (field !== 'seq') out.push(...byValue(pts, field))
  }
  if ((doc.grid as string[]).includes('seq')) {
    for (const [ctx, ps] of groups(pts, 'seq')) {
      const s = [...ps].sort((a, b) => Number(a.fields.seq) - Number(b.fields.seq))
      if (s.length < 2) continue
      const a = s[0]
      const b = s.at(-1)!
      out.push(`Sequence length${where(ctx)}: ${a.fields.seq} → ${b.fields.seq} tokens takes the peak from ${mem(a)} to ${mem(b)} (${pct(b.measuredPeakBytes! / a.measuredPeakBytes! - 1)}).`)
    }
  }
  return out
}

function methodFindings(pts: PointResult[]): string[] {
  const lines: string[] = []
  const pairs: { lora: PointResult; qlora: PointResult; ctx: string }[] = []
  for (const [ctx, ps] of groups(pts, 'method')) {
    const lora = ps.find((p) => p.fields.method === 'lora')
    const qlora = ps.find((p) => p.fields.method === 'qlora')
    if (lora && qlora) pairs.push({ lora, qlora, ctx })
  }
  if (!pairs.length) return byValue(pts, 'method')
  const below = pairs.filter((x) => x.qlora.measuredPeakBytes! < x.lora.measuredPeakBytes!)
  const detail = pairs.map((x) => `${mem(x.qlora)} vs ${mem(x.lora)}${where(x.ctx)}`).join('; ')
  const verdict = below.length === pairs.length ? 'QLoRA peaks below LoRA at every point compared' : `QLoRA peaks below LoRA at ${below.length} of ${pairs.length} points compared`
  lines.push(`${verdict} (QLoRA vs LoRA): ${detail}.`)
  return lines
}

function rankFindings(pts: PointResult[]): string[] {
  const lines: string[] = []
  for (const [ctx, ps] of groups(pts, 'rank')) {
    const s = [...ps].sort((a, b) => Number(a.fields.rank) - Number(b.fields.rank))
    if (s.length < 3) continue
    const rest = s.slice(0, -1)
    const lo = Math.min(...rest.map((p) => p.measuredPeakBytes!))
    const hi = Math.max(...rest.map((p) => p.measuredPeakBytes!))
    const top = s.at(-1)!
    const smallest = s[0]
    lines.push(
      `LoRA rank${where(ctx)}: ranks ${rest[0].fields.rank}–${rest.at(-1)!.fields.rank} peak within ${pct(hi / lo - 1).slice(1)} of each other (${rest.map((p) => mem(p)).join(', ')}); the largest, rank ${top.fields.rank}, peaks at ${mem(top)}, ${pct(top.measuredPeakBytes! / smallest.measuredPeakBytes! - 1)} over rank ${smallest.fields.rank}` +
        (top.tokensPerSecond && smallest.tokensPerSecond ? `, at ${fig(top, `${top.tokensPerSecond.toFixed(0)} tokens/s`)} against ${fig(smallest, `${smallest.tokensPerSecond.toFixed(0)}`)}.` : '.'),
    )
  }
  return lines
}

function batchFindings(pts: PointResult[]): string[] {
  const lines: string[] = []
  for (const [ctx, ps] of groups(pts, 'batch')) {
    const s = [...ps].sort((a, b) => Number(a.fields.batch) - Number(b.fields.batch)).filter((p) => p.tokensPerSecond)
    if (s.length < 2) continue
    const parts = s.map((p) => `batch ${p.fields.batch} ${fig(p, `${p.tokensPerSecond!.toFixed(0)} tokens/s`)} at ${mem(p)}`)
    const one = s.find((p) => p.fields.batch === 1)
    const two = s.find((p) => p.fields.batch === 2)
    const verdict = one && two ? `; batch 2 ${two.tokensPerSecond! > one.tokensPerSecond! ? 'processes more' : 'does not process more'} tokens/s than batch 1 (${pct(two.tokensPerSecond! / one.tokensPerSecond! - 1)})` : ''
    lines.push(`Batch size${where(ctx)}: ${parts.join(', ')}${verdict}.`)
  }
  return lines
}

function targetFindings(pts: PointResult[]): string[] {
  const lines: string[] = []
  for (const [ctx, ps] of groups(pts, 'targets')) {
    const s = [...ps].sort((a, b) => a.measuredPeakBytes! - b.measuredPeakBytes!)
    if (s.length < 2) continue
    const least = s[0]
    const rest = s.slice(1).map((p) => `${val(p.fields.targets)} ${mem(p)} (${pct(p.measuredPeakBytes! / least.measuredPeakBytes! - 1)}, ${fig(p, `${formatBytes(p.measuredPeakBytes! - least.measuredPeakBytes!)} more`)})`)
    lines.push(`Target modules${where(ctx)}: ${val(least.fields.targets)} peaks at ${mem(least)}; ${rest.join(', ')}.`)
  }
  return lines
}

function byValue(pts: PointResult[], field: SweepField): string[] {
  const lines: string[] = []
  for (const [ctx, ps] of groups(pts, field)) {
    if (ps.length < 2) continue
    const top = Math.max(...ps.map((p) => p.measuredPeakBytes!))
    lines.push(`Peak by ${field}${where(ctx)}: ${ps.map((p) => `${val(p.fields[field])} ${mem(p)} (${((p.measuredPeakBytes! / top) * 100).toFixed(0)}% of the largest)`).join(', ')}.`)
  }
  return lines
}

/**
 * The whole report.
 * @example reportMarkdown(doc, ['memory-vs-seq.png']).startsWith('# Sweep') // true
 */
export function reportMarkdown(doc: SweepDoc, plots: string[]): string {
  const grid = doc.grid as SweepField[]
  const lines: string[] = []
  lines.push(`# Sweep ${doc.spec.name}`, '')
  if (doc.spec.description) lines.push(doc.spec.description.trim(), '')
  lines.push(`Device: ${doc.device}${doc.gpu ? ` (${doc.gpu.name}, ${formatBytes(doc.gpu.memoryBytes)})` : ''}. Base: ${pointKey(doc.spec.base) || 'the default config'}. Grid: ${grid.join(' × ')}, ${doc.points.length} points. Peak memory is live tensor bytes (CUDA: max_memory_allocated; CPU: tracked tensors); the prediction is the run's own, at the longest batch it trained.`, '')
  const random = doc.points.filter((p) => p.weights === 'random')
  if (random.length) {
    const all = random.length === doc.points.filter((p) => p.weights).length
    lines.push(
      `**Random weights** at ${all ? 'every point' : `${random.length} of ${doc.points.length} points (${random.map((p) => p.index).join(', ')})`}: the model's weights were not here, so each run built it from its config with random weights (--weights ${doc.weights ?? 'auto'}). Peak memory and tokens/s are the real model's; the loss means nothing.`,
      '',
    )
  }
  lines.push('## Findings', '')
  for (const f of findings(doc)) lines.push(`- ${f}`)
  lines.push('')
  if (plots.length) {
    lines.push('## Plots', '')
    for (const p of plots) lines.push(`![${p}](${p})`, '')
  }
  lines.push('## Points', '')
  const cuda = doc.device === 'cuda'
  lines.push(`| # | ${grid.join(' | ')} | state | predicted | measured | measured/predicted |${cuda ? ' reserved | device used |' : ''} tokens/s | trained seq |`)
  lines.push(`|---|${grid.map(() => '---').join('|')}|---|---:|---:|---:|${cuda ? '---:|---:|' : ''}---:|---:|`)
  for (const p of doc.points) {
    const r = ratioOf(p)
    const cells = [
      `<a id="${anchor(p)}"></a>${p.index}`,
      ...grid.map((g) => val(p.varied[g] ?? p.fields[g] ?? '')),
      p.state + (p.message && p.state !== 'succeeded' ? `: ${p.message.replace(/\|/g, '\\|').slice(0, 200)}` : ''),
      p.predictedPeakBytes !== null ? formatBytes(p.predictedPeakBytes) : 'n/a',
      p.measuredPeakBytes !== null ? formatBytes(p.measuredPeakBytes) : 'n/a',
      r !== null ? `${r.toFixed(2)}x` : 'n/a',
      ...(cuda ? [p.measuredReservedBytes !== null ? formatBytes(p.measuredReservedBytes) : 'n/a', p.measuredDeviceUsedBytes !== null ? formatBytes(p.measuredDeviceUsedBytes) : 'n/a'] : []),
      p.tokensPerSecond !== null ? p.tokensPerSecond.toFixed(0) : 'n/a',
      p.trainedSeq !== null ? String(p.trainedSeq) : 'n/a',
    ]
    lines.push(`| ${cells.join(' | ')} |`)
  }
  lines.push('', 'Files: [points.csv](points.csv), [points.json](points.json); each point\'s training_config is under configs/, its run under runs/.', '')
  return lines.join('\n')
}
