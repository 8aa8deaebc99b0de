// The run lifecycle through bin/headroom with the REAL Python trainer on the tiny default
// model (CPU): a held --output, a supervisor killed with SIGKILL (lost, then resumed), a
// finished run that refuses to be resumed, and a SIGTERM after the last step.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { findLastCheckpoint } from '../../src/runtime/checkpoints.ts'
import { observedRunState } from '../../src/runtime/run-record.ts'
import { e2eSkipReason, headroom, lastJsonLine, tmp } from './helpers.ts'

const skip = e2eSkipReason()
const NO_STACK = /Traceback|\n\s+at [\w.<]+ \(/

const record = (dir: string) => JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'))

/** Waits until `check` holds (polling), or fails after `ms`. */
async function until(what: string, check: () => boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await sleep(250)
  }
}

test('a second tune on a held --output is refused with the holder named; the first finishes intact', { skip, timeout: 300_000 }, async () => {
  const out = join(tmp(), 'run')
  let second: ReturnType<typeof headroom> | undefined
  const first = headroom(['tune', '--json', '--max-steps', '4', '--log-every', '1', '--output', out], {
    onStderr: (stderr) => {
      if (!second && /step 1\/4/.test(stderr)) second = headroom(['tune', '--json', '--max-steps', '2', '--output', out])
    },
  })
  const a = await first
  assert.ok(second, `never saw step 1 in:\n${a.stderr}`)
  const b = await second
  assert.equal(b.code, 1, b.stderr)
  assert.match(b.stderr, new RegExp(`--output ${out} is in use by run ${record(out).id} \\(pid \\d+`))
  assert.doesNotMatch(b.stderr, NO_STACK)
  assert.equal(a.code, 0, a.stderr)
  const summary = lastJsonLine(a.stdout)
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 4)
  assert.deepEqual(record(out).summary, summary, 'run.json is the first run’s')
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')))
  assert.ok(!existsSync(join(out, '.headroom.lock')), 'the lock goes with the run')
})

test('SIGKILL of the supervisor: the run is lost, never running; --resume continues it; then it is final', { skip, timeout: 600_000 }, async () => {
  const out = join(tmp(), 'run')
  let killed = false
  const first = await headroom(['tune', '--max-steps', '8', '--log-every', '1', '--output', out], {
    onStderr: (stderr, child) => {
      if (!killed && /step 2\/8/.test(stderr)) {
        killed = true
        child.kill('SIGKILL')
      }
    },
  })
  assert.ok(killed, first.stderr)
  // The orphaned trainer notices its supervisor is gone, writes a checkpoint and stops.
  await until('the orphaned trainer to checkpoint and stop', () => existsSync(join(out, 'run.json')) && record(out).trainer?.state === 'preempted')
  const left = record(out)
  assert.equal(left.state, 'running', 'nobody recorded an end')
  assert.equal(observedRunState(out), 'lost', 'but it is shown as lost')
  const checkpoint = findLastCheckpoint(out)
  assert.ok(checkpoint && checkpoint.step >= 2, `a checkpoint: ${JSON.stringify(checkpoint)}`)

  const resumed = await headroom(['tune', '--json', '--resume', out])
  assert.equal(resumed.code, 0, resumed.stderr)
  assert.match(resumed.stderr, new RegExp(`run ${left.id} was lost: its supervisor \\(pid \\d+\\) is gone without recording an end; resuming it from checkpoint-${checkpoint.step}`))
  const summary = lastJsonLine(resumed.stdout)
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 8)
  assert.equal(observedRunState(out), 'succeeded')

  // Finished: its checkpoint directories remain, but resuming it is refused and changes nothing.
  assert.ok(findLastCheckpoint(out))
  const adapter = readFileSync(join(out, 'adapter_model.safetensors'))
  const recordText = readFileSync(join(out, 'run.json'), 'utf8')
  const again = await headroom(['tune', '--resume', out])
  assert.equal(again.code, 1, again.stderr)
  assert.match(again.stderr, /cannot be resumed: it already succeeded: its adapter is final and is never modified/)
  assert.doesNotMatch(again.stderr, NO_STACK)
  assert.deepEqual(readFileSync(join(out, 'adapter_model.safetensors')), adapter, 'adapter bytes unchanged')
  assert.equal(readFileSync(join(out, 'run.json'), 'utf8'), recordText)
})

test('a SIGTERM that lands after the last step records success', { skip, timeout: 300_000 }, async () => {
  const out = join(tmp(), 'run')
  let sent = false
  const r = await headroom(['tune', '--verbose', '--max-steps', '2', '--output', out], {
    onStderr: (stderr, child) => {
      // The trainer has saved the adapter after its last step: now the signal comes.
      if (!sent && /headroom: saved .*adapter_model\.safetensors/.test(stderr)) {
        sent = true
        child.kill('SIGTERM')
      }
    },
  })
  assert.ok(sent, r.stderr)
  const rec = record(out)
  assert.equal(rec.state, 'succeeded', r.stderr)
  assert.equal(rec.summary.adapterDir, out)
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')))
  assert.doesNotMatch(r.stderr, /--resume/, 'nobody is told to resume a finished run')
})
