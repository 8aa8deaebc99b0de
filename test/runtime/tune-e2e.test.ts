// `headroom tune` end to end through bin/headroom with the REAL Python trainer on the tiny
// embedded models (CPU). Skipped, with the reason, only when the venv is not set up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { e2eSkipReason, headroom, lastJsonLine, methodConfig, SUMMARY_KEYS, TINY_LLAMA, TINY_PHI3, tmp, writeTmp } from './helpers.ts'

const skip = e2eSkipReason()

test('default tune --json --max-steps 10: summary line, adapter files, both peaks', { skip }, async () => {
  const out = join(tmp(), 'run')
  const r = await headroom(['tune', '--json', '--max-steps', '10', '--output', out])
  assert.equal(r.code, 0, r.stderr)
  const summary = lastJsonLine(r.stdout)
  assert.deepEqual(Object.keys(summary).sort(), SUMMARY_KEYS)
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 10)
  assert.equal(summary.device, 'cpu')
  assert.equal(summary.adapterDir, out)
  assert.ok(existsSync(join(out, 'adapter_config.json')))
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')))
  assert.ok(typeof summary.measuredPeakBytes === 'number' && summary.measuredPeakBytes > 0)
  assert.ok(typeof summary.predictedPeakBytes === 'number' && summary.predictedPeakBytes > 0)
  assert.ok(typeof summary.firstLoss === 'number' && typeof summary.lastLoss === 'number')
  assert.match(r.stderr, /measured\/predicted \d+\.\d\dx/)
  // Steady steps only (3..10 here: step 1 warms up, step 2's memory is measured).
  assert.ok(typeof summary.tokensPerSecond === 'number' && summary.tokensPerSecond > 0)
  assert.match(r.stderr, new RegExp(`throughput: ${Math.round(summary.tokensPerSecond as number).toLocaleString('en-US')} tok/s`))
  const record = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))
  assert.equal(record.state, 'succeeded')
  assert.deepEqual(record.summary, summary)
  // One prediction: the planner at the longest batch trained (the run.json detail, the terminal's
  // figure), with the max_length worst case beside it and named as such.
  assert.equal(record.prediction.atObservedSeq.peakAllocatedBytes, summary.predictedPeakBytes)
  assert.equal(record.prediction.atObservedSeq.seq, record.progress.maxSeqLen)
  assert.equal(record.prediction.peakAllocatedBytes, summary.predictedMaxLengthPeakBytes)
  assert.ok((summary.predictedMaxLengthPeakBytes as number) >= (summary.predictedPeakBytes as number))
  assert.match(r.stderr, new RegExp(`predicted \\S+ \\S+ \\(${(summary.predictedPeakBytes as number).toLocaleString('en-US')} B\\) at the longest batch run`))
  assert.match(r.stderr, /worst case at max_length/)
})

const models: [string, string][] = [
  ['tiny Phi-3', TINY_PHI3],
  ['tiny Llama', TINY_LLAMA],
]
for (const method of ['lora', 'qlora', 'full'] as const) {
  for (const [name, dir] of models) {
    test(`${method} on ${name}: 20 steps through the CLI`, { skip }, async () => {
      const out = join(tmp(), 'run')
      const config = writeTmp('training_config.yaml', methodConfig(method))
      const r = await headroom(['tune', '--json', '--config', config, '--model', dir, '--method', method, '--max-steps', '20', '--output', out])
      assert.equal(r.code, 0, r.stderr)
      const summary = lastJsonLine(r.stdout)
      assert.equal(summary.state, 'succeeded')
      assert.equal(summary.steps, 20)
      assert.ok((summary.lastLoss as number) < (summary.firstLoss as number), `loss went ${summary.firstLoss} → ${summary.lastLoss}`)
      const record = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))
      assert.equal(record.prediction?.method, method)
      assert.ok(typeof summary.predictedPeakBytes === 'number' && typeof summary.measuredPeakBytes === 'number')
      const adapterFiles = method === 'full' ? ['config.json', 'model.safetensors'] : ['adapter_config.json', 'adapter_model.safetensors']
      for (const file of adapterFiles) assert.ok(existsSync(join(summary.adapterDir as string, file)), `${file} in ${summary.adapterDir}`)
    })
  }
}

test('SIGTERM mid-run writes a checkpoint; --resume reaches the configured step count', { skip }, async () => {
  const out = join(tmp(), 'run')
  let sent = false
  const first = await headroom(['tune', '--max-steps', '40', '--log-every', '1', '--output', out], {
    onStderr: (stderr, child) => {
      if (!sent && /step (5|6|7|8|9)\/40/.test(stderr)) {
        sent = true
        child.kill('SIGTERM')
      }
    },
  })
  assert.ok(sent, `never saw step 5 in:\n${first.stderr}`)
  assert.equal(first.code, 1, first.stderr)
  assert.match(first.stderr, /stopped on SIGTERM at step \d+ after writing a checkpoint/)
  const stopped = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))
  assert.equal(stopped.state, 'preempted')
  assert.ok(stopped.summary.steps < 40)
  assert.equal(stopped.summary.adapterDir, null)

  const second = await headroom(['tune', '--json', '--resume', out])
  assert.equal(second.code, 0, second.stderr)
  const summary = lastJsonLine(second.stdout)
  assert.equal(summary.state, 'succeeded')
  assert.equal(summary.steps, 40)
  assert.equal(summary.adapterDir, out)
  assert.ok(existsSync(join(out, 'adapter_model.safetensors')))
  assert.equal(summary.firstLoss, stopped.summary.firstLoss)
})

const chat = (q: string, a: string) => JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] })
const badInputs: { name: string; args: () => string[]; message: RegExp }[] = [
  { name: 'missing dataset file', args: () => ['--data', join(tmp(), 'nope.jsonl')], message: /nope\.jsonl does not exist/ },
  {
    name: 'malformed JSONL line',
    args: () => ['--data', writeTmp('broken.jsonl', [chat('a', 'b'), chat('c', 'd'), '{"messages": [oops', chat('e', 'f')].join('\n'))],
    message: /broken\.jsonl:3/,
  },
  { name: 'empty dataset', args: () => ['--data', writeTmp('empty.jsonl', '')], message: /no rows/ },
  { name: 'missing columns', args: () => ['--data', writeTmp('cols.jsonl', `${JSON.stringify({ question: 'q', answer: 'a' })}\n`)], message: /no usable columns/ },
  { name: 'unknown model path', args: () => ['--model', join(tmp(), 'no-such-model')], message: /no-such-model/ },
]
for (const bad of badInputs) {
  test(`bad input: ${bad.name} → exit 1, one clear message, nothing that looks like success`, { skip }, async () => {
    const out = join(tmp(), 'run')
    const r = await headroom(['tune', '--json', '--max-steps', '2', '--output', out, ...bad.args()])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /headroom: the run failed: /)
    assert.match(r.stderr, bad.message)
    assert.doesNotMatch(r.stderr, /Traceback|\n\s+at [\w.<]+ \(/, 'no stack trace')
    assert.equal(lastJsonLine(r.stdout).state, 'failed')
    assert.ok(!existsSync(join(out, 'adapter_model.safetensors')))
    assert.ok(!existsSync(join(out, 'fine_tuning_completed.txt')))
    if (existsSync(join(out, 'run.json'))) assert.equal(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).state, 'failed')
  })
}

test('a malformed row is skipped with --skip-bad-rows', { skip }, async () => {
  const rows = Array.from({ length: 8 }, (_, i) => chat(`question ${i}`, `answer ${i}`))
  rows.splice(2, 0, '{"messages": [oops')
  const r = await headroom(['tune', '--json', '--max-steps', '2', '--output', join(tmp(), 'run'), '--skip-bad-rows', '--data', writeTmp('rows.jsonl', rows.join('\n'))])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(lastJsonLine(r.stdout).state, 'succeeded')
})

test('usage errors exit 2 without starting a run', async () => {
  const r = await headroom(['tune', '--max-steps', 'zero'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--max-steps must be a whole number of at least 1, got "zero"/)
  const device = await headroom(['tune', '--device', 'tpu'])
  assert.equal(device.code, 2)
  assert.match(device.stderr, /--device/)
})
