/**
 * A sweep spec (DESIGN.md §2.1e): a base (model, data, steps and plan fields) and a grid over
 * plan fields. Validated against the plan field table (planner/fields.ts), so a bad field or
 * value is an error that names the field and what it accepts. Pure: parsing text to a spec.
 *
 * @example
 *   name: seed-batch
 *   base: { method: lora, seq: 256 }
 *   grid: { batch: [1, 2, 4] }
 */
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ConfigError, type Issue } from '../errors.ts'
import { findModelSync } from '../catalog/models.ts'
import { PLAN_FIELDS, planField, type PlanFieldName } from '../planner/fields.ts'

/**
 * The plan fields a point may set: the memory knobs the codec writes into a training_config
 * (config/codec.ts encode). The rest of the table (gpu, gpus, device, phase, config...) is the
 * machine's or the command line's, not a training knob; model and data are the base's.
 */
export const SWEEP_FIELDS = [
  'method',
  'dtype',
  'quant',
  'doubleQuant',
  'rank',
  'alpha',
  'loraDropout',
  'targets',
  'batch',
  'seq',
  'gradientCheckpointing',
  'attention',
  'optimizer',
] as const satisfies readonly PlanFieldName[]
export type SweepField = (typeof SWEEP_FIELDS)[number]

/** A point's settings: sweep fields only. */
export type PointFields = Partial<Record<SweepField, string | number | boolean | string[]>>

/**
 * A sweep of more points than this is a typo, not an experiment: each point is a real run of
 * at least tens of seconds, so 1,000 points is already most of a day on a CPU.
 */
export const MAX_POINTS = 1000
/** Steps per point when neither the spec nor --steps says: enough for a steady peak and a tokens/s figure. */
export const DEFAULT_STEPS = 3
export const MAX_STEPS = 10_000

export type SweepSpec = {
  name: string
  description?: string
  /** Model ref as tune takes it (a directory, hub id, or `default`); --model overrides. */
  model?: string
  /** Dataset path (relative to the spec file's directory) or URL; default: the trainer's. */
  data?: string
  steps?: number
  /** The base plan fields every point starts from. */
  base: PointFields
  /** Field → the values it takes; points are the cartesian product, in the order given. */
  grid: Partial<Record<SweepField, (string | number | boolean | string[])[]>>
  /** Instead of a product, a list of points, each a map of fields (the seed's precision table is not a product). */
  points?: PointFields[]
  /**
   * Per model (as --model names it): base fields and grid values that replace the defaults at
   * that model's scale (ranks relative to its width, lengths up to its context), e.g. the seed's
   * own ranks 8..16,384 for phi-3-mini-128k-instruct.
   */
  scales?: Record<string, { base?: PointFields; grid?: SweepSpec['grid']; points?: PointFields[]; steps?: number }>
}

const scalar = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())])
const specShape = z.strictObject({
  name: z.string().min(1).max(100).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash and underscore only'),
  description: z.string().max(2000).optional(),
  model: z.string().min(1).optional(),
  data: z.string().min(1).optional(),
  steps: z.number().int().min(1).max(MAX_STEPS).optional(),
  base: z.record(z.string(), scalar).optional(),
  grid: z.record(z.string(), z.array(scalar).min(1).max(MAX_POINTS)).optional(),
  points: z.array(z.record(z.string(), scalar)).min(1).max(MAX_POINTS).optional(),
  scales: z
    .record(
      z.string().min(1),
      z.strictObject({ base: z.record(z.string(), scalar).optional(), grid: z.record(z.string(), z.array(scalar).min(1).max(MAX_POINTS)).optional(), points: z.array(z.record(z.string(), scalar)).min(1).max(MAX_POINTS).optional(), steps: z.number().int().min(1).max(MAX_STEPS).optional() }),
    )
    .optional(),
})

/** A did-you-mean for a field name, by edit distance. */
function closest(name: string, names: readonly string[]): string | undefined {
  const d = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i)
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]
      row[0] = i
      for (let j = 1; j <= b.length; j++) {
        const cur = row[j]
        row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
        prev = cur
      }
    }
    return row[b.length]
  }
  let best: string | undefined
  let bestD = 3
  for (const n of names) {
    const dist = d(name, n)
    if (dist < bestD) [best, bestD] = [n, dist]
  }
  return best
}

/** Checks one field's value against the plan field table; returns the issue or the normalized value. */
function checkValue(path: string, name: string, value: unknown, issues: Issue[]): string | number | boolean | string[] | undefined {
  if (!(SWEEP_FIELDS as readonly string[]).includes(name)) {
    const other = name in PLAN_FIELDS ? ` (${name} is a plan field, but not one a training run can vary)` : ''
    const hint = closest(name, SWEEP_FIELDS)
    issues.push({
      code: 'unknown_field',
      path,
      message: `unknown sweep field "${name}"${other}${hint && !other ? `; did you mean "${hint}"?` : ''}: choose from ${SWEEP_FIELDS.join(', ')}`,
    })
    return undefined
  }
  const f = planField(name as PlanFieldName)
  // A YAML list of targets is the same as the comma-separated flag form.
  const v = f.kind === 'list' && typeof value === 'string' && value !== 'all-linear' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value
  const ok = f.schema.safeParse(v)
  if (!ok.success) {
    issues.push({ code: 'invalid_value', path, message: `${name} must be ${f.expect}; got ${JSON.stringify(value)}` })
    return undefined
  }
  return ok.data as string | number | boolean | string[]
}

/**
 * Parses and validates a spec's YAML text; every problem is collected before throwing.
 * @example parseSpec('name: x\ngrid: { rank: [4, 8] }', 'x.yaml').grid.rank // [4, 8]
 */
export function parseSpec(text: string, file: string): SweepSpec {
  const fail = (message: string, path = 'spec'): never => {
    throw new ConfigError([{ code: 'invalid_spec', path, message, file }])
  }
  if (text.includes('\u0000')) fail('holds NUL bytes: a sweep spec is a YAML text file (see examples/sweeps/)')
  if (!text.trim()) fail('is empty: a sweep spec needs at least `name:` and `grid:` (see examples/sweeps/seed-batch.yaml)')
  let doc: unknown
  try {
    doc = parseYaml(text, { maxAliasCount: 100 })
  } catch (err) {
    fail(`is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('must be a YAML map with `name:`, `base:` and `grid:` (see examples/sweeps/seed-batch.yaml)')
  const shaped = specShape.safeParse(doc)
  if (!shaped.success) {
    throw new ConfigError(
      shaped.error.issues.map((i) => ({
        code: 'invalid_spec',
        path: i.path.join('.') || 'spec',
        message: i.code === 'unrecognized_keys' ? `unknown key(s) ${(i as { keys: string[] }).keys.join(', ')}: a spec has name, description, model, data, steps, base, grid (or points) and scales` : i.message,
        file,
      })),
    )
  }
  const s = shaped.data!
  const issues: Issue[] = []
  const base: PointFields = {}
  for (const [k, v] of Object.entries(s.base ?? {})) {
    const value = checkValue(`base.${k}`, k, v, issues)
    if (value !== undefined) base[k as SweepField] = value
  }
  const grid = checkGrid('grid', s.grid ?? {}, issues)
  if (s.grid && s.points) issues.push({ code: 'invalid_spec', path: 'points', message: 'a spec has either grid (a product) or points (a list), not both: keep one' })
  else if (!s.points && Object.keys(s.grid ?? {}).length === 0) issues.push({ code: 'invalid_spec', path: 'grid', message: 'is missing or empty: name at least one field and its values, e.g. grid: { batch: [1, 2] }, or list points: [{ dtype: fp32 }, { dtype: bf16 }]' })
  const points = s.points ? checkPoints('points', s.points, issues) : undefined
  const scales: NonNullable<SweepSpec['scales']> = {}
  for (const [model, sc] of Object.entries(s.scales ?? {})) {
    const b: PointFields = {}
    for (const [k, v] of Object.entries(sc.base ?? {})) {
      const value = checkValue(`scales.${model}.base.${k}`, k, v, issues)
      if (value !== undefined) b[k as SweepField] = value
    }
    scales[model] = { base: b, grid: checkGrid(`scales.${model}.grid`, sc.grid ?? {}, issues), ...(sc.points ? { points: checkPoints(`scales.${model}.points`, sc.points, issues) } : {}), steps: sc.steps }
    if (sc.grid) checkSize(`scales.${model}.grid`, { ...s.grid, ...sc.grid }, issues)
  }
  checkSize('grid', s.grid ?? {}, issues)
  if (issues.length) throw new ConfigError(issues.map((i) => ({ ...i, file })))
  return { name: s.name, description: s.description, model: s.model, data: s.data, steps: s.steps, base, grid, ...(points ? { points } : {}), ...(s.scales ? { scales } : {}) }
}

function checkPoints(path: string, raw: Record<string, unknown>[], issues: Issue[]): PointFields[] {
  return raw.map((pt, i) => {
    const f: PointFields = {}
    for (const [k, v] of Object.entries(pt)) {
      const value = checkValue(`${path}[${i}].${k}`, k, v, issues)
      if (value !== undefined) f[k as SweepField] = value
    }
    return f
  })
}

function checkGrid(path: string, raw: Record<string, unknown[]>, issues: Issue[]): SweepSpec['grid'] {
  const grid: SweepSpec['grid'] = {}
  for (const [k, values] of Object.entries(raw)) {
    const checked = values.map((v, i) => checkValue(`${path}.${k}[${i}]`, k, v, issues))
    if (checked.every((v) => v !== undefined)) grid[k as SweepField] = checked as (string | number | boolean | string[])[]
  }
  return grid
}

function checkSize(path: string, raw: Record<string, unknown[]>, issues: Issue[]): void {
  const size = Object.values(raw).reduce((n, vs) => n * vs.length, 1)
  if (size > MAX_POINTS) {
    issues.push({ code: 'too_many_points', path, message: `has ${size.toLocaleString('en-US')} points; a sweep runs at most ${MAX_POINTS.toLocaleString('en-US')} (each point is a real training run): take fewer values` })
  }
}

/**
 * The spec at a model's scale: its `scales` entry for that model, if any, laid over the base
 * and grid (the grid's own fields keep their order).
 * @example atScale(spec, 'phi-3-mini-128k-instruct').grid.rank // [8, 16, 64, 256, 16384]
 */
export function atScale(spec: SweepSpec, model: string | undefined): SweepSpec {
  // Any name the catalog answers to (its hub id, an alias) selects the catalog id's scale.
  const sc = model ? (spec.scales?.[model] ?? spec.scales?.[findModelSync(model)?.name ?? '']) : undefined
  if (!sc) return spec
  return { ...spec, base: { ...spec.base, ...sc.base }, grid: { ...spec.grid, ...sc.grid }, ...(sc.points ? { points: sc.points } : {}), steps: sc.steps ?? spec.steps }
}

/** The fields that differ between points: the grid's, or every field a listed point sets. */
export function variedFields(spec: SweepSpec): SweepField[] {
  const named = new Set<string>([...Object.keys(spec.grid), ...(spec.points ?? []).flatMap((p) => Object.keys(p))])
  return SWEEP_FIELDS.filter((f) => named.has(f))
}

/** One grid point: its index, the fields it sets (grid fields only), and all its fields (base + grid). */
export type GridPoint = { index: number; varied: PointFields; fields: PointFields }

/**
 * The cartesian product of the grid, first field outermost.
 * @example expandGrid({ ...spec, grid: { method: ['lora', 'qlora'], seq: [64, 128] } }).length // 4
 */
export function expandGrid(spec: SweepSpec): GridPoint[] {
  if (spec.points) return spec.points.map((varied, index) => ({ index, varied, fields: { ...spec.base, ...varied } }))
  let combos: PointFields[] = [{}]
  for (const [k, values] of Object.entries(spec.grid)) {
    combos = combos.flatMap((c) => values!.map((v) => ({ ...c, [k]: v })))
  }
  return combos.map((varied, index) => ({ index, varied, fields: { ...spec.base, ...varied } }))
}

/** A stable key for a point's fields (key order fixed by SWEEP_FIELDS), e.g. `method=lora,seq=128`. */
export function pointKey(fields: PointFields): string {
  return SWEEP_FIELDS.filter((k) => fields[k] !== undefined)
    .map((k) => `${k}=${Array.isArray(fields[k]) ? (fields[k] as string[]).join('+') : String(fields[k])}`)
    .join(',')
}
