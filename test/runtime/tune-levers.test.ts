/**
 * tune's levers (issue 13) reach the trainer and the run's prediction: --loss, --offload-activations and
 * --packing are appended to the trainer's argv (checked with the fake trainer, which records it), the
 * prediction plans the same input with them, a resumed run keeps them, and `tune --loss bogus` is a usage
 * error naming the choices. The real trainer's handling of the flags is L13T's (python tests).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRun } from '../../src/runtime/supervisor.ts'
import type { TuneOptions } from '../../src/runtime/types.ts'
import { planMemory } from '../../src/planner/plan.ts'
import { loadModel } from '../../src/catalog/index.ts'
import { planInputFor, readSections } from '../../src/runtime/prediction.ts'
import { writeFileSync } from 'node:fs'

const FAKE = fileURLToPath(new URL('./fixtures/fake-trainer.mjs', import.meta.url))
const root = fileURLToPath(new URL('../../', import.meta.url))

async function fakeRun(opts: Partial<TuneOptions>) {
  const scratch = mkdtempSync(join(tmpdir(), 'headroom-levers-'))
  const argvFile = join(scratch, 'argv.json')
  const run = await startRun(
    { output: join(scratch, 'run'), maxSteps: 3, device: 'cpu', ...opts, env: { FAKE_SCENARIO: 'ok', FAKE_ARGV_FILE: argvFile, HEADROOM_CPU_BF16: '0' } },
    { trainer: { command: process.execPath, args: [FAKE] }, forwardSignals: false },
  )
  const summary = await run.done
  const argv = JSON.parse(readFileSync(argvFile, 'utf8')) as string[]
  return { run, summary, argv, cleanup: () => rmSync(scratch, { recursive: true, force: true }) }
}

test('the trainer gets --loss chunked --offload-activations --packing, and the prediction plans them', async () => {
  const on = await fakeRun({ loss: 'chunked', offloadActivations: true, packing: true })
  const off = await fakeRun({})
  try {
    assert.equal(on.summary.state, 'succeeded')
    assert.equal(on.argv[on.argv.indexOf('--loss') + 1], 'chunked')
    assert.ok(on.argv.includes('--offload-activations'))
    assert.ok(on.argv.includes('--packing'))
    for (const flag of ['--loss', '--offload-activations', '--packing']) assert.ok(!off.argv.includes(flag), `${flag} is not passed unless asked`)

    const p = on.run.prediction!
    assert.equal(p.input.loss, 'chunked')
    assert.equal(p.input.offloadActivations, true)
    assert.equal(p.input.packing, true)
    assert.equal(off.run.prediction!.input.loss, 'full', "the default config's loss")
    // The recorded prediction is the planner's for that input, and differs from the full loss's.
    assert.equal(p.record.peakAllocatedBytes, planMemory(p.input).peakAllocatedBytes)
    assert.notEqual(p.record.peakAllocatedBytes, off.run.prediction!.record.peakAllocatedBytes)
    // --loss full is passed when asked: it overrides a config that chunks.
    const full = await fakeRun({ loss: 'full' })
    try {
      assert.equal(full.argv[full.argv.indexOf('--loss') + 1], 'full')
    } finally {
      full.cleanup()
    }
  } finally {
    on.cleanup()
    off.cleanup()
  }
})

test('a resumed run keeps its levers: the trainer gets them again without the flags', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'headroom-levers-resume-'))
  const env = (scenario: string, file: string) => ({ FAKE_SCENARIO: scenario, FAKE_ARGV_FILE: join(scratch, file), HEADROOM_CPU_BF16: '0' })
  const sup = { trainer: { command: process.execPath, args: [FAKE] }, forwardSignals: false, predict: false }
  try {
    const first = await startRun({ output: join(scratch, 'run'), maxSteps: 10, device: 'cpu', loss: 'chunked', packing: true, env: env('wait-signal', 'a.json') }, sup)
    first.on('event', (e) => e.type === 'step' && e.step === 2 && first.cancel('SIGTERM'))
    assert.equal((await first.done).state, 'preempted')
    const second = await startRun({ resume: first.outputDir, maxSteps: 10, env: env('ok', 'b.json') }, sup)
    assert.equal((await second.done).state, 'succeeded')
    const argv = JSON.parse(readFileSync(join(scratch, 'b.json'), 'utf8')) as string[]
    assert.ok(argv.includes('--resume-from'))
    assert.equal(argv[argv.indexOf('--loss') + 1], 'chunked')
    assert.ok(argv.includes('--packing'))
    assert.ok(!argv.includes('--offload-activations'))
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})

test('--auto-fit: the retry runs the written config as is (no lever flag overrides it), and the config keeps --packing', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'headroom-levers-fit-'))
  try {
    const config = join(scratch, 'training_config.yaml')
    writeFileSync(config, ['training_config:', '  ModelConfig:', '    torch_dtype: "bfloat16"', '  QuantizationConfig:', '    load_in_4bit: false', '  TrainingArguments:', '    per_device_train_batch_size: 4', '    max_length: 6144', '    gradient_checkpointing: false', ''].join('\n'))
    const argvFile = join(scratch, 'argv.json')
    const run = await startRun(
      { config, model: 'phi-3-mini-128k-instruct', output: join(scratch, 'run'), device: 'cpu', maxSteps: 3, autoFit: true, loss: 'full', packing: true, env: { FAKE_SCENARIO: 'oom-then-ok', FAKE_ARGV_FILE: argvFile, HEADROOM_CPU_BF16: '0' } },
      { trainer: { command: process.execPath, args: [FAKE] }, forwardSignals: false },
    )
    assert.equal((await run.done).state, 'succeeded')
    assert.ok(run.autoFit, 'the retry happened')
    const first = JSON.parse(readFileSync(`${argvFile}.oom`, 'utf8')) as string[]
    const retry = JSON.parse(readFileSync(`${argvFile}.ok`, 'utf8')) as string[]
    assert.equal(first[first.indexOf('--loss') + 1], 'full')
    assert.ok(first.includes('--packing'))
    for (const flag of ['--loss', '--offload-activations', '--packing']) assert.ok(!retry.includes(flag), `${flag} does not override the auto-fit config`)
    // The written config decodes to what the retry was planned for, packing included.
    const decoded = planInputFor(readSections(run.autoFit!.configPath), await loadModel('phi-3-mini-128k-instruct'), { device: 'cpu' })
    assert.equal(decoded.packing, true)
    assert.equal(decoded.loss, run.prediction!.input.loss)
    assert.equal(planMemory(decoded).peakAllocatedBytes, run.prediction!.record.peakAllocatedBytes)
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})

test('tune --loss bogus: exit 2 naming the choices, no stack trace', () => {
  const r = spawnSync(join(root, 'bin/headroom'), ['tune', '--loss', 'bogus'], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 2)
  assert.match(r.stderr, /'bogus' is invalid\. Allowed choices are full, chunked/)
  assert.doesNotMatch(r.stderr, /\n\s+at /)
})

test('POST /v1/runs takes the levers as tune does; a bad value is a 400 naming the field', async () => {
  const { startServer } = await import('../../src/server/server.ts')
  const server = await startServer({ db: ':memory:', port: 0, processMetrics: false })
  try {
    const res = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ loss: 'bogus', maxSteps: 1 }) })
    const text = await res.text()
    assert.equal(res.status, 400, text)
    assert.match(text, /loss/)
    assert.match(text, /full|chunked/)
    // Distributed fields, as tune --nproc/--parallelism: the combinations tune refuses (by the same rules,
    // runtime/torchrun.ts) are 400s on the field, named as JSON fields, never as flags.
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ parallelism: 'fsdp' }, /parallelism fsdp shards across ranks and needs at least 2 \(got 1\): add nproc 2 or more/],
      [{ parallelism: 'ddp', nproc: 1 }, /parallelism ddp needs more than one rank: add nproc N/],
      [{ nproc: 0 }, /nproc/],
    ]
    for (const [body, message] of cases) {
      const r = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, maxSteps: 1 }) })
      const t = await r.text()
      assert.equal(r.status, 400, t)
      assert.match(t, message)
      assert.doesNotMatch(t, /--/)
      if ('parallelism' in body) assert.equal(JSON.parse(t).issues[0].path, 'parallelism', t)
    }
  } finally {
    await server.close()
  }
})
