// The supervisor's plumbing against a fake trainer (fixtures/fake-trainer.mjs): event parsing,
// log routing, run.json, exit-code → state mapping, signal forwarding and --resume lookup.
// The real Python trainer is exercised in tune-e2e.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRun } from '../../src/runtime/supervisor.ts'
import type { TrainerEvent } from '../../src/runtime/events.ts'
import { findLastCheckpoint, resolveResume } from '../../src/runtime/checkpoints.ts'
import { stateForExit } from '../../src/runtime/exit-codes.ts'
import { newRunId, isRunId } from '../../src/runtime/run-id.ts'

const FAKE = fileURLToPath(new URL('./fixtures/fake-trainer.mjs', import.meta.url))

async function fakeRun(scenario: string, extra: { maxSteps?: number; resume?: string; output?: string } = {}) {
  const scratch = mkdtempSync(join(tmpdir(), 'headroom-sup-'))
  // A resumed run goes back into the directory it continues, so it names no output.
  const output = extra.resume ? undefined : (extra.output ?? join(scratch, 'run'))
  const argvFile = join(scratch, 'argv.json')
  const run = await startRun(
    { output, maxSteps: extra.maxSteps ?? 3, device: 'cpu', resume: extra.resume, env: { FAKE_SCENARIO: scenario, FAKE_ARGV_FILE: argvFile } },
    { trainer: { command: process.execPath, args: [FAKE] }, predict: false, forwardSignals: false },
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

test('findLastCheckpoint picks the highest step numerically; resolveResume explains a missing checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-ckpt-'))
  for (const n of [2, 10, 9]) mkdirSync(join(dir, `checkpoint-${n}`))
  mkdirSync(join(dir, 'checkpoint-x'))
  assert.deepEqual(findLastCheckpoint(dir), { path: join(dir, 'checkpoint-10'), step: 10 })
  assert.deepEqual(resolveResume(join(dir, 'checkpoint-9')).checkpoint.step, 9)
  const empty = mkdtempSync(join(tmpdir(), 'headroom-ckpt-'))
  assert.throws(() => resolveResume(empty), /has no checkpoint-N directory/)
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
