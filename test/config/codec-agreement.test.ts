/**
 * Every door gives the same plan for the same file (issue 8, item 2): for every tuning ConfigMap
 * in the repo (test/fixtures/kaito: verbatim copies of ../shared/kaito-data's configmaps/ and
 * examples/fine-tuning/; any in examples/; the trainer's built-in default_config.yaml),
 * `plan --config`, `check --json`, tune's prediction (predictRun, and two real `tune` runs) and
 * `init`'s header decode the same input and predict the same peak. The CPU paths run with
 * HEADROOM_CPU_BF16=0 and =1, so both compute-dtype decisions are exercised on any machine.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { findHardware, loadModel } from '../../src/catalog/index.ts'
import { decode } from '../../src/config/codec.ts'
import { parseTuningConfig } from '../../src/config/parse.ts'
import { describeInput } from '../../src/config/render.ts'
import { planMemory } from '../../src/planner/index.ts'
import type { MemoryPlan } from '../../src/planner/types.ts'
import { predictRun } from '../../src/runtime/prediction.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tmp = mkdtempSync(join(tmpdir(), 'headroom-codec-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

const MODEL = 'phi-3-mini-128k-instruct'
const GPU = 'A100-80GB'
const TINY = join(root, '.headroom/assets/tiny-phi3')

function yamlFiles(dir: string): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return yamlFiles(path)
    return /\.ya?ml$/.test(name) ? [path] : []
  })
}

const FILES = [
  ...yamlFiles(join(root, 'test/fixtures/kaito')),
  ...yamlFiles(join(root, 'examples')).filter((f) => readFileSync(f, 'utf8').includes('training_config')),
  join(root, 'python/headroom_runtime/default_config.yaml'),
]

async function headroom(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(join(root, 'bin/headroom'), args, { timeout: 120_000, env: { ...process.env, ...env }, maxBuffer: 1 << 24 })
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string }
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

async function planJson(args: string[], env: Record<string, string> = {}): Promise<MemoryPlan> {
  const r = await headroom(['plan', ...args, '--json'], env)
  assert.equal(r.code, 0, `plan ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout) as MemoryPlan
}

/** The plan without the model's display name (a path is spelled differently by each door). */
const sansName = (p: MemoryPlan) => ({ ...p, model: { params: p.model.params } })

/** Runs fn with HEADROOM_CPU_BF16 set in this process (predictRun reads it), then restores it. */
async function withCpuBf16<T>(value: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.HEADROOM_CPU_BF16
  process.env.HEADROOM_CPU_BF16 = value
  try {
    return await fn()
  } finally {
    if (before === undefined) delete process.env.HEADROOM_CPU_BF16
    else process.env.HEADROOM_CPU_BF16 = before
  }
}

describe('every tuning ConfigMap: plan --config, check, tune’s prediction agree', () => {
  test('the shared KAITO files are all here (when ../shared is present)', () => {
    const shared = '/work/shared/kaito-data'
    if (!existsSync(shared)) return
    for (const dir of ['configmaps', 'examples/fine-tuning']) {
      for (const f of readdirSync(join(shared, dir))) {
        const copy = join(root, 'test/fixtures/kaito', f)
        assert.ok(existsSync(copy), `${dir}/${f} has an in-repo copy`)
        assert.equal(readFileSync(copy, 'utf8'), readFileSync(join(shared, dir, f), 'utf8'), `${f} is verbatim`)
      }
    }
  })

  for (const file of FILES) {
    const name = relative(root, file)
    test(name, async () => {
      const parsed = parseTuningConfig(readFileSync(file), { file })
      const gpuArgs = ['--config', file, '--model', MODEL, '--gpu', GPU]
      if (!parsed.value) {
        // Not a tuning config (inference-params) or a Workspace naming a ConfigMap not in the file:
        // no door plans it, and plan --config says why instead of printing nothing.
        const check = JSON.parse((await headroom(['check', file, '--model', MODEL, '--gpu', GPU, '--json'])).stdout)
        assert.equal(check.plan, undefined)
        const plan = await headroom(['plan', ...gpuArgs, '--json'])
        assert.equal(plan.code, 1)
        assert.match(plan.stderr, /\S/)
        return
      }
      const model = await loadModel(MODEL)
      // On a GPU: plan --config, check --json and the library decode give one plan.
      const plan = await planJson(gpuArgs)
      const check = JSON.parse((await headroom(['check', file, '--model', MODEL, '--gpu', GPU, '--json'])).stdout)
      assert.deepEqual(check.plan, plan, 'check plans what plan --config plans')
      const input = decode(parsed.value, { model, device: 'cuda', hardware: findHardware(GPU) })
      assert.deepEqual(JSON.parse(JSON.stringify(planMemory(input))), plan, 'the library decode plans the same')
      assert.equal(check.context.seq, input.seq)

      // On CPU, both compute-dtype decisions: tune's prediction equals plan --config --device cpu.
      const fromTemplate = parsed.units.find((u) => u.raw)?.kind === 'default-template'
      const asked = decode(parsed.value, { model, device: 'cuda' }).dtype
      for (const bf16 of ['0', '1']) {
        const cpuPlan = await planJson(['--config', file, '--model', TINY, '--device', 'cpu'], { HEADROOM_CPU_BF16: bf16 })
        const tiny = await loadModel(TINY)
        const cpuInput = decode(parsed.value, { model: tiny, device: 'cpu', cpuBf16: bf16 === '1' })
        // The trainer's rule: 16-bit compute only where the CPU has native bf16, else float32.
        assert.equal(cpuInput.dtype, bf16 === '1' ? asked : 'fp32')
        assert.deepEqual(sansName(JSON.parse(JSON.stringify(planMemory(cpuInput)))), sansName(cpuPlan), `decode on cpu, HEADROOM_CPU_BF16=${bf16}`)
        if (fromTemplate) {
          // A Workspace alone: KAITO runs its default template; Headroom's trainer reads no Workspace, and neither does its prediction.
          await assert.rejects(withCpuBf16(bf16, () => predictRun({ config: file, model: TINY, device: 'cpu' })))
          continue
        }
        const predicted = await withCpuBf16(bf16, () => predictRun({ config: file, model: TINY, device: 'cpu' }))
        assert.deepEqual({ ...predicted.input, model: null }, { ...cpuInput, model: null }, `tune decodes the same input, HEADROOM_CPU_BF16=${bf16}`)
        assert.deepEqual(sansName(JSON.parse(JSON.stringify(predicted.plan))), sansName(cpuPlan), `tune predicts the same peak, HEADROOM_CPU_BF16=${bf16}`)
      }
    })
  }
})

describe('tune: the prediction a real run starts with equals plan --config on the same device', () => {
  const cases = [
    { file: join(root, 'test/fixtures/kaito/kaito_configmap_tuning_phi_3.yaml'), bf16: '0' },
    { file: join(root, 'python/headroom_runtime/default_config.yaml'), bf16: '1' },
  ]
  for (const { file, bf16 } of cases) {
    test(`${relative(root, file)}, HEADROOM_CPU_BF16=${bf16}`, async () => {
      const output = join(tmp, `tune-${bf16}`)
      const env = { HEADROOM_CPU_BF16: bf16 }
      const [run, plan] = await Promise.all([
        headroom(['tune', '--config', file, '--model', 'tiny-phi3', '--data', join(root, 'examples/data/stdlib-docs.jsonl'), '--output', output, '--max-steps', '1', '--device', 'cpu', '--json'], env),
        planJson(['--config', file, '--model', TINY, '--device', 'cpu'], env),
      ])
      assert.equal(run.code, 0, run.stderr.slice(-2000))
      const record = JSON.parse(readFileSync(join(output, 'run.json'), 'utf8'))
      // The supervisor passes this prediction to the trainer's start event (--predicted-peak-bytes).
      assert.equal(record.prediction.peakAllocatedBytes, plan.peakAllocatedBytes)
      assert.deepEqual(record.prediction.breakdown, plan.breakdown)
    })
  }
})

describe('init: its header describes the input that the written file decodes to', () => {
  for (const [modelId, gpu, extra] of [
    [MODEL, 'A10', []],
    ['llama-3.1-8b-instruct', 'T4', ['--goal', 'max-throughput', '--seq', '1024']],
  ] as const) {
    test(`${modelId} on ${gpu}`, async () => {
      const out = join(tmp, `init-${gpu}.yaml`)
      const r = await headroom(['init', '--model', modelId, '--gpu', gpu, ...extra, '-o', out])
      assert.equal(r.code, 0, r.stderr)
      const text = readFileSync(out, 'utf8')
      const planned = /^# Planned as: (.*); peak ([\d,]+) bytes\.$/m.exec(text)
      assert.ok(planned, 'the header names the planned input and peak')
      const plan = await planJson(['--config', out, '--model', modelId, '--gpu', gpu])
      assert.equal(plan.peakBytes, Number(planned[2].replace(/,/g, '')), 'plan --config on the file predicts the header’s peak')
      const check = JSON.parse((await headroom(['check', out, '--model', modelId, '--gpu', gpu, '--json'])).stdout)
      assert.equal(check.valid, true, JSON.stringify(check.issues))
      assert.deepEqual(check.plan, plan)
      const input = decode(parseTuningConfig(text).value!, { model: await loadModel(modelId), device: 'cuda', hardware: findHardware(gpu) })
      assert.equal(describeInput(input), planned[1], 'the file decodes to the input the header describes')
    })
  }
})
