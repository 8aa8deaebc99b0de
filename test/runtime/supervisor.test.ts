// The supervisor's plumbing against a fake trainer (fixtures/fake-trainer.mjs): event parsing,
// log routing, run.json, exit-code → state mapping, signal forwarding and --resume lookup.
// The real Python trainer is exercised in tune-e2e.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { hostname } from 'node:os'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRun } from '../../src/runtime/supervisor.ts'
import type { TrainerEvent } from '../../src/runtime/events.ts'
import { findLastCheckpoint, resolveResume } from '../../src/runtime/checkpoints.ts'
import { stateForExit } from '../../src/runtime/exit-codes.ts'
import { newRunId, isRunId } from '../../src/runtime/run-id.ts'
import { observedRunState } from '../../src/runtime/run-record.ts'
import { lockPath, readLock } from '../../src/runtime/run-lock.ts'
import { nextState, resumable } from '../../src/runtime/lifecycle.ts'

const FAKE = fileURLToPath(new URL('./fixtures/fake-trainer.mjs', import.meta.url))

async function fakeRun(scenario: string, extra: { maxSteps?: number; resume?: string; output?: string; progress?: string[] } = {}) {
  const scratch = mkdtempSync(join(tmpdir(), 'headroom-sup-'))
  // A resumed run goes back into the directory it continues, so it names no output.
  const output = extra.resume ? undefined : (extra.output ?? join(scratch, 'run'))
  const argvFile = join(scratch, 'argv.json')
  const run = await startRun(
    { output, maxSteps: extra.resume ? extra.maxSteps : (extra.maxSteps ?? 3), device: 'cpu', resume: extra.resume, env: { FAKE_SCENARIO: scenario, FAKE_ARGV_FILE: argvFile } },
    { trainer: { command: process.execPath, args: [FAKE] }, predict: false, forwardSignals: false, onProgress: (l) => extra.progress?.push(l) },
  )
  const events: TrainerEvent[] = []
  const logs: string[] = []
  run.on('event', (e) => events.push(e))
  run.on('log', (l) => logs.push(l))
  return { run, dir: run.outputDir, events, logs, argv: () => JSON.parse(readFileSync(argvFile, 'utf8')) as string[] }
}

test('a successful run: events in order, logs separate, summary and run.json agree', async () => {
  const { run, dir, events, logs, argv } = await fakeRun('ok')
  const summary = await run.done
  assert.deepEqual(events.map((e) => e.type), ['start', 'step', 'step', 'step', 'done'])
  assert.ok(logs.includes('a plain log line from the trainer'))
  assert.ok(logs.includes('a stderr line'))
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 3)
  assert.equal(summary.firstLoss, 4.9)
  assert.ok(Math.abs(summary.lastLoss! - 4.7) < 1e-9)
  assert.equal(summary.adapterDir, dir)
  assert.equal(summary.measuredPeakBytes, 5003)
  assert.equal(summary.predictedPeakBytes, null)
  const record = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'))
  assert.equal(record.state, 'succeeded')
  assert.equal(record.id, run.id)
  assert.deepEqual(record.summary, summary)
  assert.equal(record.eventCounts.step, 3)
  assert.equal(record.exit.code, 0)
  const args = argv()
  assert.deepEqual(args.slice(args.indexOf('--output'), args.indexOf('--output') + 2), ['--output', dir])
  assert.ok(args.includes('--max-steps') && args[args.indexOf('--max-steps') + 1] === '3')
  assert.ok(args.includes('--device') && args[args.indexOf('--device') + 1] === 'cpu')
})

test('lines that look like events but break the schema become warnings in the log', async () => {
  const { run, events, logs } = await fakeRun('invalid')
  await run.done
  assert.deepEqual(events.map((e) => e.type), ['start'])
  assert.ok(logs.some((l) => l.startsWith('headroom: warning: trainer line does not match the event schema') && l.includes('"step":"one"')))
  assert.ok(logs.includes('{not json at all'), 'a non-JSON line passes through as a plain log line')
})

const exits: [string, string, string | null][] = [
  ['bad-input', 'failed', 'data.jsonl:3: not valid JSON (Expecting value)'],
  ['crash', 'failed', 'the trainer crashed (exit 2, a bug in the runtime)'],
  ['oom', 'oom', null],
]
for (const [scenario, state, message] of exits) {
  test(`exit of scenario ${scenario} → state ${state}, no adapter`, async () => {
    const { run, dir } = await fakeRun(scenario)
    const summary = await run.done
    assert.equal(summary.state, state)
    assert.equal(summary.adapterDir, null)
    const record = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'))
    assert.equal(record.state, state)
    if (message) assert.equal(record.error.message, message)
    if (state === 'oom') assert.equal(record.oom.seqLen, 6144)
    assert.ok(!existsSync(join(dir, 'adapter_config.json')))
  })
}

test('cancel(SIGTERM) checkpoints and ends preempted; cancel(SIGINT) ends cancelled', async () => {
  const term = await fakeRun('wait-signal', { maxSteps: 1000 })
  term.run.on('event', (e) => e.type === 'step' && e.step === 3 && term.run.cancel('SIGTERM'))
  const termSummary = await term.run.done
  assert.equal(termSummary.state, 'preempted')
  assert.ok(termSummary.steps >= 3)
  assert.ok(term.events.some((e) => e.type === 'checkpoint' && e.reason === 'signal'))
  assert.equal(findLastCheckpoint(term.dir)?.step, termSummary.steps)

  const int = await fakeRun('wait-signal', { maxSteps: 1000 })
  int.run.on('event', (e) => e.type === 'step' && int.run.cancel('SIGINT'))
  assert.equal((await int.run.done).state, 'cancelled')
})

test('SIGTERM sent to the supervisor reaches the trainer', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'headroom-sup-')), 'run')
  const run = await startRun(
    { output: dir, maxSteps: 1000, device: 'cpu', env: { FAKE_SCENARIO: 'wait-signal' } },
    { trainer: { command: process.execPath, args: [FAKE] }, predict: false },
  )
  run.on('event', (e) => e.type === 'step' && e.step === 2 && process.kill(process.pid, 'SIGTERM'))
  const summary = await run.done
  assert.equal(summary.state, 'preempted')
  assert.equal(process.listenerCount('SIGTERM'), 0, 'the forwarder is removed when the trainer exits')
})

test('resume continues in the same run directory from the last checkpoint', async () => {
  const first = await fakeRun('wait-signal', { maxSteps: 10 })
  first.run.on('event', (e) => e.type === 'step' && e.step === 4 && first.run.cancel('SIGTERM'))
  const stopped = await first.run.done
  assert.equal(stopped.state, 'preempted')
  const checkpoint = findLastCheckpoint(first.dir)!
  const second = await fakeRun('ok', { maxSteps: 10, resume: first.dir })
  const summary = await second.run.done
  assert.equal(second.run.id, first.run.id)
  assert.equal(second.run.outputDir, first.dir)
  const args = second.argv()
  assert.equal(args[args.indexOf('--resume-from') + 1], checkpoint.path)
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 10)
  assert.equal(second.events.filter((e) => e.type === 'step')[0].type === 'step' && (second.events.find((e) => e.type === 'step') as { step: number }).step, checkpoint.step + 1)
  assert.equal(summary.firstLoss, stopped.firstLoss, 'the first loss is the original run’s')
})

const CHECKPOINT_FILES = ['trainer_state.json', 'optimizer.pt', 'scheduler.pt', 'rng_state.pt', 'adapter_model.safetensors']
function completeCheckpoint(dir: string, step: number): string {
  const path = join(dir, `checkpoint-${step}`)
  mkdirSync(path, { recursive: true })
  for (const f of CHECKPOINT_FILES) writeFileSync(join(path, f), '{}')
  return path
}

test('findLastCheckpoint picks the highest COMPLETE step numerically; resolveResume explains a missing checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-ckpt-'))
  for (const n of [2, 10, 9]) completeCheckpoint(dir, n)
  mkdirSync(join(dir, 'checkpoint-x'))
  // An empty and a cut-short checkpoint above the complete ones never block them.
  mkdirSync(join(dir, 'checkpoint-12'))
  const partial = completeCheckpoint(dir, 11)
  rmSync(join(partial, 'optimizer.pt'))
  assert.deepEqual(findLastCheckpoint(dir), { path: join(dir, 'checkpoint-10'), step: 10 })
  assert.equal(resolveResume(dir).checkpoint.step, 10)
  assert.deepEqual(resolveResume(join(dir, 'checkpoint-9')).checkpoint.step, 9)
  assert.throws(() => resolveResume(join(dir, 'checkpoint-11')), /checkpoint-11 is incomplete \(no optimizer\.pt\)/)
  const empty = mkdtempSync(join(tmpdir(), 'headroom-ckpt-'))
  assert.throws(() => resolveResume(empty), /has no complete checkpoint-N directory/)
  assert.throws(() => resolveResume('20990101-000000-abcdef', empty), /no run directory/)
})

test('exit codes map to run states', () => {
  assert.equal(stateForExit(0, null), 'succeeded')
  assert.equal(stateForExit(1, null), 'failed')
  assert.equal(stateForExit(2, null), 'failed')
  assert.equal(stateForExit(3, null), 'oom')
  assert.equal(stateForExit(4, null), 'preempted')
  assert.equal(stateForExit(130, null), 'cancelled')
  assert.equal(stateForExit(null, 'SIGKILL'), 'failed')
  assert.equal(stateForExit(null, 'SIGTERM'), 'preempted')
  assert.equal(stateForExit(null, 'SIGKILL', 'SIGINT'), 'cancelled')
})

test('run ids sort by time and are unique', () => {
  const a = newRunId(new Date('2026-01-02T03:04:05Z'))
  assert.match(a, /^20260102-030405-[0-9a-f]{6}$/)
  assert.ok(isRunId(a))
  assert.ok(newRunId(new Date('2026-01-02T03:04:06Z')) > a)
  assert.notEqual(newRunId(), newRunId())
})

test('the lifecycle: one reducer, finished runs final, lost only from active states', () => {
  assert.equal(nextState('queued', { type: 'start' }), 'running')
  assert.equal(nextState('running', { type: 'exit', state: 'preempted' }), 'preempted')
  assert.equal(nextState('preempted', { type: 'start' }), 'running', 'a resume')
  assert.equal(nextState('lost', { type: 'start' }), 'running', 'a lost run resumes')
  assert.equal(nextState('running', { type: 'lost' }), 'lost')
  assert.equal(nextState('cancelled', { type: 'lost' }), 'cancelled', 'an ended run stays as it ended')
  assert.throws(() => nextState('succeeded', { type: 'start' }), /never modified/)
  assert.throws(() => nextState('succeeded', { type: 'exit', state: 'failed' }), /never modified/)
  assert.throws(() => nextState('preempted', { type: 'exit', state: 'succeeded' }), /not running/)
  assert.deepEqual(resumable('lost'), { ok: true })
  assert.equal(resumable('succeeded').ok, false)
})

test('an --output held by a live run is refused with the holder named; the first run finishes intact', async () => {
  const first = await fakeRun('wait-signal', { maxSteps: 40 })
  const holder = readLock(first.dir)
  assert.equal(holder?.runId, first.run.id)
  assert.equal(holder?.pid, process.pid)
  await assert.rejects(fakeRun('ok', { output: first.dir }), (err: Error & { exitCode?: number }) => {
    assert.match(err.message, new RegExp(`--output ${first.dir} is in use by run ${first.run.id} \\(pid ${process.pid}`))
    assert.equal(err.exitCode, 1)
    return true
  })
  first.run.on('event', (e) => e.type === 'step' && e.step >= 3 && first.run.cancel('SIGTERM'))
  const summary = await first.run.done
  assert.equal(summary.state, 'preempted')
  const record = JSON.parse(readFileSync(join(first.dir, 'run.json'), 'utf8'))
  assert.equal(record.id, first.run.id, 'the refused run wrote nothing')
  assert.ok(!existsSync(lockPath(first.dir)), 'the lock is released with the run')
})

test('resume of a finished run exits 1 and says so; its adapter is untouched', async () => {
  const first = await fakeRun('wait-signal', { maxSteps: 10 })
  first.run.on('event', (e) => e.type === 'step' && e.step === 4 && first.run.cancel('SIGTERM'))
  await first.run.done
  const second = await fakeRun('ok', { maxSteps: 10, resume: first.dir })
  assert.equal((await second.run.done).state, 'succeeded')
  const adapter = readFileSync(join(first.dir, 'adapter_config.json'))
  const recordBefore = readFileSync(join(first.dir, 'run.json'), 'utf8')
  await assert.rejects(fakeRun('ok', { maxSteps: 10, resume: first.dir }), (err: Error & { exitCode?: number }) => {
    assert.match(err.message, /cannot be resumed: it already succeeded: its adapter is final and is never modified/)
    assert.equal(err.exitCode, 1)
    return true
  })
  await assert.rejects(fakeRun('ok', { output: first.dir }), /already succeeded and a finished run is never modified; choose another --output/)
  assert.deepEqual(readFileSync(join(first.dir, 'adapter_config.json')), adapter)
  assert.equal(readFileSync(join(first.dir, 'run.json'), 'utf8'), recordBefore)
})

test('a SIGTERM after the trainer saved and reported success records success', async () => {
  const { run, dir } = await fakeRun('done-then-sigterm')
  const summary = await run.done
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.adapterDir, dir)
  const record = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'))
  assert.equal(record.state, 'succeeded')
  assert.equal(record.exit.signal, 'SIGTERM', 'the exit itself is recorded as it was')
})

test('a resume attempt that fails before its first step leaves the record it resumed unchanged', async () => {
  const first = await fakeRun('wait-signal', { maxSteps: 10 })
  first.run.on('event', (e) => e.type === 'step' && e.step === 3 && first.run.cancel('SIGTERM'))
  await first.run.done
  const before = JSON.parse(readFileSync(join(first.dir, 'run.json'), 'utf8'))
  const attempt = await fakeRun('fail-to-load', { resume: first.dir })
  assert.equal((await attempt.run.done).state, 'failed')
  const after = JSON.parse(readFileSync(join(first.dir, 'run.json'), 'utf8'))
  for (const key of ['state', 'options', 'summary', 'progress', 'checkpoints', 'updatedAt']) assert.deepEqual(after[key], before[key], key)
  // ... so the next resume still works, with the original options.
  const again = await fakeRun('ok', { resume: first.dir })
  const summary = await again.run.done
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 10, 'the original --max-steps 10 survived the failed attempt')
})

test('a run whose supervisor died is lost, never running, and --resume continues it', async () => {
  const first = await fakeRun('wait-signal', { maxSteps: 10 })
  first.run.on('event', (e) => e.type === 'step' && e.step === 4 && first.run.cancel('SIGTERM'))
  await first.run.done
  // What a SIGKILLed supervisor leaves: run.json saying running, a lock naming a dead process.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
  const deadPid = Number(dead.stdout)
  const record = JSON.parse(readFileSync(join(first.dir, 'run.json'), 'utf8'))
  writeFileSync(join(first.dir, 'run.json'), JSON.stringify({ ...record, state: 'running', summary: { ...record.summary, state: 'running' } }))
  writeFileSync(lockPath(first.dir), JSON.stringify({ runId: first.run.id, pid: deadPid, startTicks: 1, host: hostname(), since: new Date().toISOString() }))
  assert.equal(observedRunState(first.dir), 'lost')
  const progress: string[] = []
  const resumed = await fakeRun('ok', { resume: first.dir, progress })
  assert.equal(observedRunState(first.dir), 'running', 'held by a live supervisor again')
  assert.ok(progress.some((l) => l.includes(`run ${first.run.id} was lost: its supervisor (pid ${deadPid}) is gone`)), progress.join('\n'))
  const summary = await resumed.run.done
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 10)
  assert.equal(observedRunState(first.dir), 'succeeded')
})
