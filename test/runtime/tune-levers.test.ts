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

test('tune --loss bogus: exit 2 naming the choices, no stack trace', () => {
  const r = spawnSync(join(root, 'bin/headroom'), ['tune', '--loss', 'bogus'], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 2)
  assert.match(r.stderr, /'bogus' is invalid\. Allowed choices are full, chunked/)
  assert.doesNotMatch(r.stderr, /\n\s+at /)
})
