/**
 * `headroom tune --weights`, `headroom sweep --weights` and POST /v1/runs' `weights`, through their
 * real surfaces on a model directory that holds the tiny Phi-3's config.json and tokenizer but not
 * its weights (what a catalogued model looks like on a machine that cannot download it; the
 * full-size build is tested on the meta device in python/tests/test_random_weights.py).
 */
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { e2eSkipReason, headroom, methodConfig, tmp, TINY_PHI3 } from './helpers.ts'

const skip = e2eSkipReason()
const work = tmp('headroom-random-weights-')
// Random models are cached per architecture: keep this test's out of the user's cache.
process.env.HEADROOM_RANDOM_WEIGHTS_DIR = join(work, 'random-cache')
process.env.HF_HUB_OFFLINE = '1'

/** The tiny Phi-3 without its weight files. */
function configOnlyModel(): string {
  const dir = join(work, 'tiny-phi3-config-only')
  mkdirSync(dir, { recursive: true })
  for (const f of readdirSync(TINY_PHI3)) if (!/\.(safetensors|bin)$/.test(f)) copyFileSync(join(TINY_PHI3, f), join(dir, f))
  return dir
}

const noStack = (s: string) => assert.doesNotMatch(s, /Traceback|\n\s+at .*:\d+:\d+/)
const config = () => {
  const path = join(work, 'lora.yaml')
  writeFileSync(path, methodConfig('lora', { per_device_train_batch_size: 2, max_length: 48 }))
  return path
}

test('tune without weights fails with one line naming the model and the fix; --weights auto trains on random ones and says so', { skip, timeout: 240_000 }, async () => {
  const model = configOnlyModel()
  const refused = await headroom(['tune', '--model', model, '--config', config(), '--max-steps', '2', '--device', 'cpu', '--output', join(work, 'refused'), '--json'])
  assert.equal(refused.code, 1, refused.stderr)
  noStack(refused.stderr)
  const line = refused.stderr.split('\n').find((l) => l.includes('no weights for model'))
  assert.ok(line, refused.stderr)
  assert.match(line, new RegExp(`no weights for model ${model}.*pass a model directory with its weights, or --weights random`))

  const out = join(work, 'auto')
  const r = await headroom(['tune', '--model', model, '--config', config(), '--max-steps', '2', '--device', 'cpu', '--output', out, '--weights', 'auto', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 2)
  assert.ok(summary.measuredPeakBytes > 0 && summary.predictedPeakBytes > 0)
  assert.match(r.stderr, new RegExp(`random weights built from ${model}/config.json \\(--weights auto\\): peak memory and tokens/s are the real model's; the loss means nothing`))
  const record = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))
  assert.equal(record.options.weights, 'auto') // a --resume asks for the same weights
  assert.equal(record.trainer.weights, 'random')
})

test('a sweep point on a model without weights here records random weights in points.json, points.csv and report.md', { skip, timeout: 240_000 }, async () => {
  const model = configOnlyModel()
  const spec = join(work, 'one.yaml')
  writeFileSync(spec, `name: one\nmodel: ${model}\ndata: ${join(import.meta.dirname, '..', '..', 'examples', 'sweeps', 'data', 'long-text.jsonl')}\nbase: { method: lora, dtype: fp32, targets: all-linear, batch: 1, gradientCheckpointing: false }\ngrid:\n  seq: [48]\n`)
  const out = join(work, 'sweep')
  const r = await headroom(['sweep', spec, '--out', out, '--steps', '2', '--device', 'cpu', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const doc = JSON.parse(readFileSync(join(out, 'points.json'), 'utf8'))
  assert.equal(doc.weights, 'auto')
  assert.equal(doc.points[0].state, 'succeeded', doc.points[0].message)
  assert.equal(doc.points[0].weights, 'random')
  const csv = readFileSync(join(out, 'points.csv'), 'utf8').trim().split('\n')
  const weightsColumn = csv[0].split(',').indexOf('weights')
  assert.ok(weightsColumn > 0, csv[0])
  assert.equal(csv[1].split(',')[weightsColumn], 'random')
  assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /\*\*Random weights\*\* at every point: .*--weights auto.*Peak memory and tokens\/s are the real model's; the loss means nothing/)

  // --weights pretrained is another experiment: refused into the same --out, one line.
  const other = await headroom(['sweep', spec, '--out', out, '--steps', '2', '--device', 'cpu', '--weights', 'pretrained'])
  assert.equal(other.code, 1)
  assert.match(other.stderr, /holds a sweep with another base .*"weights":"pretrained".*choose another --out/)
  noStack(other.stderr)
})

test('tune --weights takes only its three values (usage error, exit 2)', { skip }, async () => {
  const r = await headroom(['tune', '--weights', 'zeros', '--max-steps', '1'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--weights.*zeros.*pretrained, auto, random/)
  noStack(r.stderr)
})

test('POST /v1/runs takes weights as tune does: auto trains on random weights and its start event says so; an unknown value is a 400 naming the field', { skip, timeout: 240_000 }, async () => {
  const { startServer } = await import('../../src/server/server.ts')
  const { parseSse } = await import('../server/helpers.ts')
  const model = configOnlyModel()
  const server = await startServer({ db: join(work, 'h.db'), port: 0, runsDir: join(work, 'runs'), processMetrics: false, allowPaths: [work] })
  try {
    const post = (body: object) => fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const bad = await post({ model, weights: 'zeros', maxSteps: 1, device: 'cpu' })
    assert.equal(bad.status, 400)
    assert.match(JSON.stringify(await bad.json()), /weights/)

    const res = await post({ model, weights: 'auto', maxSteps: 1, device: 'cpu', config: methodConfig('lora', { per_device_train_batch_size: 2, max_length: 48 }) })
    const created = (await res.json()) as { id: string }
    assert.equal(res.status, 201, JSON.stringify(created))
    const messages = parseSse(await (await fetch(`${server.url}/v1/runs/${created.id}/events`)).text())
    const start = JSON.parse(messages.find((m) => m.event === 'start')!.data)
    assert.equal(start.weights.source, 'random')
    assert.equal(start.weights.mode, 'auto')
    const done = JSON.parse(messages.at(-1)!.data)
    assert.equal(done.summary.state, 'succeeded', JSON.stringify(done))
  } finally {
    await server.close()
  }
})
