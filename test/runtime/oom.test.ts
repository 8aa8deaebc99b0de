// The out-of-memory path: the planner's advice in words, and --auto-fit's single retry with
// the recommended configuration (against the fake trainer, which "fits" on the retry).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { findGpu, loadModel } from '../../src/catalog/index.ts'
import { planMemory } from '../../src/planner/index.ts'
import { oomAdvice, preflightWarning } from '../../src/runtime/oom-advice.ts'
import { planInputFor, predictionFor, readSections } from '../../src/runtime/prediction.ts'
import { startRun } from '../../src/runtime/supervisor.ts'

const FAKE = fileURLToPath(new URL('./fixtures/fake-trainer.mjs', import.meta.url))
const sections = {
  ModelConfig: { torch_dtype: 'bfloat16' },
  QuantizationConfig: { load_in_4bit: false },
  LoraConfig: { r: 8, lora_alpha: 8 },
  TrainingArguments: { per_device_train_batch_size: 4, max_length: 6144, gradient_checkpointing: false },
}

test('OOM advice: what the failing shape needs, what the GPU has, and changes that fit', async () => {
  const model = await loadModel('phi-3-mini-128k-instruct')
  const input = { ...planInputFor(sections, model, { device: 'cuda' }), gpu: findGpu('A10') }
  const prediction = predictionFor(input, sections)
  const advice = oomAdvice(prediction, { seqLen: 6144, batch: 4 })
  const needs = planMemory({ ...input, seq: 6144, batch: 4 }).peakBytes
  assert.ok(needs > input.gpu.memoryBytes, 'the case really does not fit')
  assert.match(advice, /^at 6,144 tokens × batch 4 this needs \d+\.\d GiB, the A10 has 2\d\.\d GiB: /)
  assert.match(advice, /enable gradient checkpointing \(TrainingArguments\.gradient_checkpointing: true\)/)
  assert.match(advice, /set TrainingArguments\.max_length to [\d,]+/)
  // Every number it proposes must fit by the planner's own account.
  const seq = Number(/max_length to ([\d,]+)/.exec(advice)![1].replace(/,/g, ''))
  assert.ok(planMemory({ ...input, seq, batch: 4 }).peakBytes <= input.gpu.memoryBytes)
})

test('--auto-fit retries once with a written config after an OOM, and the retry succeeds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-oom-'))
  const config = join(dir, 'training_config.yaml')
  writeFileSync(config, `training_config:\n${Object.entries(sections).map(([k, v]) => `  ${k}:\n${Object.entries(v).map(([kk, vv]) => `    ${kk}: ${JSON.stringify(vv)}`).join('\n')}`).join('\n')}\n`)
  const argvFile = join(dir, 'argv.json')
  const run = await startRun(
    { config, model: 'phi-3-mini-128k-instruct', output: join(dir, 'run'), device: 'cpu', maxSteps: 3, autoFit: true, env: { FAKE_SCENARIO: 'oom-then-ok', FAKE_ARGV_FILE: argvFile } },
    { trainer: { command: process.execPath, args: [FAKE] }, forwardSignals: false },
  )
  const logs: string[] = []
  run.on('log', (l) => logs.push(l))
  const summary = await run.done
  assert.equal(summary.state, 'succeeded')
  assert.ok(run.autoFit, 'the retry happened')
  const written = join(dir, 'run', 'auto-fit-config.yaml')
  assert.equal(run.autoFit!.configPath, written)
  const retryArgs = JSON.parse(readFileSync(`${argvFile}.ok`, 'utf8')) as string[]
  assert.equal(retryArgs[retryArgs.indexOf('--config') + 1], written)
  const record = JSON.parse(readFileSync(join(dir, 'run', 'run.json'), 'utf8'))
  // The retry is planned for its own configuration, not the one that ran out of memory.
  assert.equal(Number(retryArgs[retryArgs.indexOf('--predicted-peak-bytes') + 1]), record.prediction.peakAllocatedBytes)
  const firstArgs = JSON.parse(readFileSync(`${argvFile}.oom`, 'utf8')) as string[]
  assert.ok(Number(firstArgs[firstArgs.indexOf('--predicted-peak-bytes') + 1]) > record.prediction.peakAllocatedBytes)
  const adjusted = parse(readFileSync(written, 'utf8')).training_config
  assert.equal(typeof adjusted.TrainingArguments.gradient_checkpointing, 'boolean')
  assert.ok(Number.isInteger(adjusted.TrainingArguments.per_device_train_batch_size))
  assert.match(readFileSync(written, 'utf8'), /^# Written by headroom tune --auto-fit/)
  // The written file decodes (the codec, as the retry reads it) to exactly the configuration the retry was planned for.
  const decoded = planInputFor(readSections(written), await loadModel('phi-3-mini-128k-instruct'), { device: 'cpu' })
  const retried = planMemory(decoded)
  assert.deepEqual(
    { peak: retried.peakAllocatedBytes, seq: decoded.seq, batch: decoded.batch, method: decoded.method },
    { peak: record.prediction.peakAllocatedBytes, seq: record.prediction.seq, batch: record.prediction.batch, method: record.prediction.method },
  )
  assert.ok(logs.some((l) => l.includes('--auto-fit retries once')))
  assert.equal(record.autoFit.firstAttempt.oom.seqLen, 6144)
  assert.ok(existsSync(join(dir, 'run', 'adapter_config.json')))
})

test('without --auto-fit an OOM ends the run with the advice recorded', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-oom-'))
  const run = await startRun(
    { model: 'phi-3-mini-128k-instruct', output: join(dir, 'run'), device: 'cpu', env: { FAKE_SCENARIO: 'oom' } },
    { trainer: { command: process.execPath, args: [FAKE] }, forwardSignals: false },
  )
  const summary = await run.done
  assert.equal(summary.state, 'oom')
  assert.match(run.oomAdvice ?? '', /^at 6,144 tokens × batch 2 this needs/)
  const record = JSON.parse(readFileSync(join(dir, 'run', 'run.json'), 'utf8'))
  assert.equal(record.oom.advice, run.oomAdvice)
})

// Before the run: the worst case at max_length against what the device has. Budgets come from the
// machine (host RAM on CPU, the catalog's GPU), so the cases are chosen far from any machine's edge.
const HUGE = { ...sections, ModelConfig: { torch_dtype: 'bfloat16', attn_implementation: 'eager' }, TrainingArguments: { per_device_train_batch_size: 8, max_length: 131072, gradient_checkpointing: false } }

test('preflight: a worst case beyond the device is a warning with the changes that fit; one within it, or an unknown GPU, is none', async () => {
  const model = await loadModel('phi-3-mini-128k-instruct')
  const huge = predictionFor(planInputFor(HUGE, model, { device: 'cpu' }), HUGE)
  assert.ok(huge.plan.peakBytes > totalmem(), 'eager attention over 131,072 tokens x 8 exceeds any host')
  assert.match(preflightWarning(huge) ?? '', /^the worst case at max_length may not fit \(batches padded that long would run out of memory\): at 131,072 tokens × batch 8 this needs [\d.]+ [GT]iB, this machine has [\d.]+ GiB: /)
  const onA10 = predictionFor({ ...planInputFor(HUGE, model, { device: 'cuda' }), gpu: findGpu('A10') }, HUGE)
  assert.match(preflightWarning(onA10) ?? '', /the A10 has 2\d\.\d GiB: .*set TrainingArguments\.max_length to [\d,]+/)
  // A GPU the catalog does not know: nothing to compare with, so no warning rather than a wrong one.
  assert.equal(preflightWarning(predictionFor(planInputFor(HUGE, model, { device: 'cuda' }), HUGE)), null)
  // CPU ranks share the host: the plan is per rank, the budget the machine's.
  const ranks = predictionFor(planInputFor(HUGE, model, { device: 'cpu', ranks: 2 }), HUGE)
  assert.match(preflightWarning(ranks) ?? '', /at 131,072 tokens × batch 8 each of 2 ranks needs [\d.]+ [GT]iB, [\d.]+ [GT]iB in all, and this machine has [\d.]+ GiB: lower TrainingArguments\.max_length or the number of ranks$/)
  const small = { ...sections, TrainingArguments: { per_device_train_batch_size: 1, max_length: 256, gradient_checkpointing: true } }
  const fits = predictionFor({ ...planInputFor(small, model, { device: 'cuda' }), gpu: findGpu('A100-80GB') }, small)
  assert.equal(preflightWarning(fits), null)
})

test('preflight: tune says the warning before the trainer starts and run.json keeps it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-preflight-'))
  const config = join(dir, 'training_config.yaml')
  writeFileSync(config, `training_config:\n${Object.entries(HUGE).map(([k, v]) => `  ${k}:\n${Object.entries(v).map(([kk, vv]) => `    ${kk}: ${JSON.stringify(vv)}`).join('\n')}`).join('\n')}\n`)
  const lines: string[] = []
  const run = await startRun(
    { config, model: 'phi-3-mini-128k-instruct', output: join(dir, 'run'), device: 'cpu', maxSteps: 2 },
    { trainer: { command: process.execPath, args: [FAKE] }, forwardSignals: false, onProgress: (l) => lines.push(l) },
  )
  const summary = await run.done
  assert.equal(summary.state, 'succeeded', 'a warning, not a refusal')
  const warning = lines.find((l) => l.startsWith('headroom: warning: the worst case at max_length may not fit'))
  assert.ok(warning, lines.join('\n'))
  const record = JSON.parse(readFileSync(join(dir, 'run', 'run.json'), 'utf8'))
  assert.equal(`headroom: warning: ${record.prediction.warning}`, warning)
})
