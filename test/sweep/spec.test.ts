/**
 * The sweep's pure core: spec validation against the plan field table, grid expansion, a
 * point's training_config through the codec (decoded back, it is the point), CSV and findings.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { ConfigError } from '../../src/errors.ts'
import { decode, readSectionsForTest } from './helpers.ts'
import { loadModel } from '../../src/catalog/index.ts'
import { pointInput, pointSections } from '../../src/sweep/point-config.ts'
import { findings, reportMarkdown } from '../../src/sweep/report.ts'
import { toCsv, type PointResult, type SweepDoc } from '../../src/sweep/results.ts'
import { atScale, expandGrid, MAX_POINTS, parseSpec, pointKey } from '../../src/sweep/spec.ts'

const issuesOf = (text: string) => {
  try {
    parseSpec(text, 'x.yaml')
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`)
    return err.issues
  }
  assert.fail('the spec was accepted')
}

test('a spec expands to the product of its grid, first field outermost', () => {
  const spec = parseSpec('name: s\nbase: { method: lora, batch: 1 }\ngrid:\n  method: [lora, qlora]\n  seq: [64, 128, 256]\n', 's.yaml')
  const points = expandGrid(spec)
  assert.equal(points.length, 6)
  assert.deepEqual(points.map((p) => pointKey(p.varied)), ['method=lora,seq=64', 'method=lora,seq=128', 'method=lora,seq=256', 'method=qlora,seq=64', 'method=qlora,seq=128', 'method=qlora,seq=256'])
  // The grid overrides the base; base fields the grid leaves alone stay.
  assert.equal(points[3].fields.method, 'qlora')
  assert.equal(points[3].fields.batch, 1)
})

test('an unknown field is an error naming it, a close match and the choices', () => {
  const [issue] = issuesOf('name: s\ngrid: { rnak: [4, 8] }\n')
  assert.equal(issue.path, 'grid.rnak[0]')
  assert.match(issue.message, /unknown sweep field "rnak"; did you mean "rank"\?/)
  assert.match(issue.message, /choose from method, dtype, quant/)
  // A plan field that is not a training knob says so.
  const [gpu] = issuesOf('name: s\ngrid: { gpu: [A100-80GB] }\n')
  assert.match(gpu.message, /gpu is a plan field, but not one a training run can vary/)
})

test('a value out of bounds names the field, the value and what it accepts', () => {
  const [rank] = issuesOf('name: s\ngrid: { rank: [8, 0] }\n')
  assert.equal(rank.path, 'grid.rank[1]')
  assert.match(rank.message, /rank must be a whole number from 1 to 65,536, e.g. 8; got 0/)
  const [dtype] = issuesOf('name: s\nbase: { dtype: fp8 }\ngrid: { rank: [8] }\n')
  assert.match(dtype.message, /dtype must be one of fp32, fp16, bf16; got "fp8"/)
})

test('a grid of a million points is refused with the bound', () => {
  const ten = '[1,2,3,4,5,6,7,8,9,10]'
  const text = `name: s\ngrid:\n  rank: ${ten}\n  batch: ${ten}\n  seq: ${ten}\n  alpha: ${ten}\n  loraDropout: [0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]\n  gradientCheckpointing: [true, false]\n`
  const issues = issuesOf(text)
  const big = issues.find((i) => i.code === 'too_many_points')
  assert.ok(big, JSON.stringify(issues))
  assert.match(big.message, new RegExp(`has 200,000 points; a sweep runs at most ${MAX_POINTS.toLocaleString('en-US')}`))
})

test('empty, binary and non-map specs are refused with what a spec is', () => {
  assert.match(issuesOf('')[0].message, /is empty/)
  assert.match(issuesOf('\u0000\u0001binary')[0].message, /NUL bytes/)
  assert.match(issuesOf('- a\n- b\n')[0].message, /must be a YAML map/)
  assert.match(issuesOf('name: s\n')[0].message, /grid.*missing or empty|is missing or empty/)
  assert.match(issuesOf('name: s\ngrid: { rank: [8] }\nfoo: 1\n')[0].message, /unknown key\(s\) foo/)
})

test('a listed-points spec and a model scale', () => {
  const spec = parseSpec('name: s\npoints:\n  - { dtype: fp32 }\n  - { dtype: bf16, quant: nf4 }\nscales:\n  big: { grid: { rank: [8, 16] }, base: { seq: 1024 } }\n', 's.yaml')
  assert.deepEqual(expandGrid(spec).map((p) => pointKey(p.varied)), ['dtype=fp32', 'dtype=bf16,quant=nf4'])
  const big = atScale(parseSpec('name: s\nbase: { seq: 64 }\ngrid: { rank: [1, 2] }\nscales:\n  big: { grid: { rank: [8, 16] }, base: { seq: 1024 } }\n', 's.yaml'), 'big')
  assert.deepEqual(big.grid.rank, [8, 16])
  assert.equal(big.base.seq, 1024)
})

test("the shipped seed specs: the tiny model's values by default, the seed's own at phi-3-mini-128k-instruct's scale", async () => {
  const { readFileSync } = await import('node:fs')
  const read = (name: string) => parseSpec(readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'sweeps', `${name}.yaml`), 'utf8'), name)
  const seed = (name: string) => expandGrid(atScale(read(name), 'phi-3-mini-128k-instruct'))
  const tiny = (name: string) => expandGrid(read(name))
  const values = (points: { fields: Record<string, unknown> }[], f: string) => points.map((p) => p.fields[f])
  assert.deepEqual(values(seed('seed-rank'), 'rank'), [8, 16, 64, 256, 16384])
  assert.deepEqual(values(tiny('seed-rank'), 'rank'), [1, 4, 16, 1024])
  assert.deepEqual(values(seed('seed-batch'), 'batch'), [1, 2, 4, 8])
  assert.deepEqual(values(tiny('seed-batch'), 'batch'), [1, 2, 4])
  assert.deepEqual(values(seed('seed-lora-qlora-seq'), 'seq'), [1024, 2048, 3072, 4096, 1024, 2048, 3072, 4096, 8192])
  // The tiny model's context is 512 tokens: no CPU point asks for more.
  for (const name of ['seed-batch', 'seed-lora-qlora-seq', 'seed-precision', 'seed-rank', 'seed-targets']) {
    assert.ok(tiny(name).every((p) => Number(p.fields.seq) <= 512), name)
    assert.ok(seed(name).every((p) => Number(p.fields.seq) >= 1024), name)
  }
})

test("a catalog model's scale is found by any name the catalog answers to", () => {
  const spec = parseSpec('name: s\nbase: { seq: 64 }\ngrid: { rank: [1, 2] }\nscales:\n  phi-3-mini-128k-instruct: { grid: { rank: [8, 16384] }, base: { seq: 1024 } }\n', 's.yaml')
  for (const name of ['phi-3-mini-128k-instruct', 'microsoft/Phi-3-mini-128k-instruct', 'phi3-mini-128k']) assert.deepEqual(atScale(spec, name).grid.rank, [8, 16384], name)
  assert.deepEqual(atScale(spec, 'phi-3-mini-4k-instruct').grid.rank, [1, 2])
})

test("a point's training_config decodes back to the point (the run predicts what it runs)", async () => {
  const model = await loadModel('phi-3-mini-128k-instruct')
  const sections = readSectionsForTest()
  const base = decode(sections, { model, device: 'cuda', hardware: null })
  for (const fields of [
    { method: 'lora', dtype: 'bf16', seq: 512, rank: 64 },
    { method: 'qlora', seq: 256, targets: ['qkv_proj', 'o_proj'] },
    { quant: 'int8', batch: 2 },
    { method: 'lora', quant: 'none', dtype: 'fp32' },
  ] as const) {
    const { input, sections: written } = pointSections(sections, base, fields as never)
    const back = decode(written, { model, device: 'cuda', hardware: null, method: input.method })
    for (const [k, v] of Object.entries(fields)) assert.deepEqual((back as Record<string, unknown>)[k], v, `${k} of ${JSON.stringify(fields)}`)
    assert.equal(back.method, input.method)
    assert.equal(back.quant, input.quant)
  }
  // The method follows the quantization the point asks for, as the trainer infers it.
  assert.equal(pointInput(base, { method: 'lora', quant: 'nf4' }).method, 'qlora')
  assert.equal(pointInput(base, { method: 'qlora', quant: 'none' }).method, 'lora')
  assert.equal(pointInput({ ...base, method: 'lora', quant: 'none' }, { method: 'qlora' }).quant, 'nf4')
  assert.throws(() => pointInput(base, { method: 'full', quant: 'nf4' }), /full cannot train a nf4-quantized base/)
})

function point(index: number, varied: Record<string, unknown>, measured: number, predicted: number, tps = 100): PointResult {
  return {
    index,
    key: pointKey(varied as never),
    fields: varied as never,
    varied: varied as never,
    state: 'succeeded',
    predictedPeakBytes: predicted,
    predictedState: null,
    measuredPeakBytes: measured,
    measuredReservedBytes: null,
    measuredDeviceUsedBytes: null,
    tokensPerSecond: tps,
    trainedSeq: 64,
    steps: 2,
    seconds: 1,
    device: 'cpu',
    runDir: `runs/${index}`,
  }
}

const MIB = 1024 ** 2
const doc = (grid: string[], points: PointResult[]): SweepDoc => ({ version: 1, spec: { name: 't', base: {}, grid: {} }, baseKey: '', device: 'cpu', gpu: null, grid, points, updatedAt: '' })

test('findings are computed from the points and link each figure to its row', () => {
  const d = doc(['method', 'seq'], [point(0, { method: 'lora', seq: 128 }, 20 * MIB, 21 * MIB), point(1, { method: 'lora', seq: 256 }, 40 * MIB, 41 * MIB), point(2, { method: 'qlora', seq: 128 }, 12 * MIB, 12 * MIB), point(3, { method: 'qlora', seq: 256 }, 30 * MIB, 36 * MIB)])
  const f = findings(d)
  assert.match(f[0], /3 of 4 measured points within 10%; the farthest is point 3 .*\[30\.0 MiB measured vs 36\.0 MiB predicted, 0\.83x\]\(#p3\)/)
  assert.ok(f.some((l) => /^QLoRA peaks below LoRA at every point compared .*\[12\.0 MiB\]\(#p2\) vs \[20\.0 MiB\]\(#p0\) \(seq=128\)/.test(l)), f.join('\n'))
  // When one pair is not below, the sentence says how many.
  const mixed = doc(['method', 'seq'], [point(0, { method: 'lora', seq: 128 }, 20 * MIB, 20 * MIB), point(1, { method: 'qlora', seq: 128 }, 25 * MIB, 25 * MIB)])
  assert.ok(findings(mixed).some((l) => l.startsWith('QLoRA peaks below LoRA at 0 of 1 points')))
  const md = reportMarkdown(d, ['memory-vs-seq.png'])
  assert.match(md, /<a id="p3"><\/a>3 \| qlora \| 256 \| succeeded \| 36\.0 MiB \| 30\.0 MiB \| 0\.83x/)
  assert.match(md, /!\[memory-vs-seq\.png\]\(memory-vs-seq\.png\)/)
})

test('batch and rank findings', () => {
  const b = findings(doc(['batch'], [point(0, { batch: 1 }, 10 * MIB, 10 * MIB, 100), point(1, { batch: 2 }, 12 * MIB, 12 * MIB, 150)]))
  assert.ok(b.some((l) => /batch 2 processes more tokens\/s than batch 1 \(\+50\.0%\)/.test(l)), b.join('\n'))
  const r = findings(doc(['rank'], [point(0, { rank: 1 }, 10 * MIB, 10 * MIB), point(1, { rank: 2 }, 10.1 * MIB, 10 * MIB), point(2, { rank: 1024 }, 30 * MIB, 30 * MIB)]))
  assert.ok(r.some((l) => /ranks 1–2 peak within 1\.0% of each other .*rank 1024, peaks at \[30\.0 MiB\]\(#p2\), \+200\.0% over rank 1/.test(l)), r.join('\n'))
})

test('points.csv has the fields, then state, predicted, measured and tokens/s; quotes what needs it', () => {
  const p = { ...point(0, { targets: ['qkv_proj', 'o_proj'], rank: 8 }, 10, 11), state: 'failed' as const, message: 'bad, "quoted"' }
  const csv = toCsv(doc(['targets'], [p])).split('\n')
  assert.equal(csv[0], 'index,rank,targets,state,predictedPeakBytes,measuredPeakBytes,tokensPerSecond,measuredOverPredicted,predictedState,measuredReservedBytes,measuredDeviceUsedBytes,trainedSeq,steps,seconds,weights,message')
  assert.equal(csv[1], '0,8,qkv_proj+o_proj,failed,11,10,100,0.9091,,,,64,2,1,,"bad, ""quoted"""')
})

test('report.md says which points ran on random weights, and says nothing when none did', () => {
  const pts = [{ ...point(0, { rank: 8 }, 10, 10), weights: 'random' as const }, { ...point(1, { rank: 16 }, 11, 11), weights: 'pretrained' as const }]
  const mixed = reportMarkdown({ ...doc(['rank'], pts), weights: 'auto' }, [])
  assert.match(mixed, /\*\*Random weights\*\* at 1 of 2 points \(0\): .*--weights auto.*the loss means nothing/)
  const all = reportMarkdown({ ...doc(['rank'], pts.map((p) => ({ ...p, weights: 'random' as const }))), weights: 'random' }, [])
  assert.match(all, /\*\*Random weights\*\* at every point: .*--weights random/)
  assert.doesNotMatch(reportMarkdown(doc(['rank'], [point(0, { rank: 8 }, 10, 10)]), []), /Random weights/)
})

test('calibration fits the mean residual as workspace on CPU, and context and slack from CUDA counters', async () => {
  const { fitOverhead, rmsError } = await import('../../src/sweep/calibrate.ts')
  const pts = [
    { measuredPeakBytes: 95, predictedPeakBytes: 100, publishedWorkspaceBytes: 0, churnBytes: 40, measuredReservedBytes: null, measuredDeviceUsedBytes: null },
    { measuredPeakBytes: 190, predictedPeakBytes: 200, publishedWorkspaceBytes: 0, churnBytes: 80, measuredReservedBytes: null, measuredDeviceUsedBytes: null },
  ]
  const cpu = fitOverhead(pts, 'cpu', { contextBytes: 0, slackFraction: 0 })
  assert.deepEqual(cpu, { contextBytes: 0, slackFraction: 0, workspaceBytes: -7 }) // residuals -5 and -10: Math.round(-7.5)
  const before = rmsError(pts.map((p) => ({ measured: p.measuredPeakBytes, predicted: p.predictedPeakBytes })))
  const after = rmsError(pts.map((p) => ({ measured: p.measuredPeakBytes, predicted: p.predictedPeakBytes + cpu.workspaceBytes })))
  assert.ok(after < before)
  // CUDA: the context is what the device uses beyond the allocator; the slack is reserved - allocated over the churn.
  const gpu = fitOverhead(
    [{ measuredPeakBytes: 1000, predictedPeakBytes: 1010, publishedWorkspaceBytes: 8, churnBytes: 200, measuredReservedBytes: 1100, measuredDeviceUsedBytes: 1600 }],
    'cuda',
    { contextBytes: 447e6, slackFraction: 0.05 },
  )
  assert.deepEqual(gpu, { contextBytes: 500, slackFraction: 0.5, workspaceBytes: -2 })
})
