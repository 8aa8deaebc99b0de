import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'headroom')
const run = (...args: string[]) => spawnSync(bin, ['plan', ...args], { encoding: 'utf8', timeout: 60_000 })

test('plan --json prints exactly the MemoryPlan', () => {
  const r = run('--json', '--phase', 'load', '--dtype', 'bf16')
  assert.equal(r.status, 0, r.stderr)
  const plan = JSON.parse(r.stdout)
  assert.deepEqual(Object.keys(plan).sort(), [
    'breakdown', 'device', 'fits', 'gpu', 'headroomBytes', 'matchedTargets', 'maxSeqLen', 'model', 'peakAllocatedBytes',
    'peakBytes', 'phase', 'trainableParams', 'trainablePercent', 'unmatchedTargets', 'warnings',
  ])
  assert.deepEqual(Object.keys(plan.breakdown), ['weights', 'adapters', 'gradients', 'optimizer', 'activations', 'logits', 'overhead'])
  assert.ok(Math.abs(plan.peakBytes / 1e9 - 8.09) / 8.09 <= 0.1)
  assert.equal(plan.gpu.name, 'A100-80GB')
})

test('plan --recommend --json prints {plan, recommendation, command}', () => {
  const r = run('--recommend', '--json')
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.deepEqual(Object.keys(out), ['plan', 'recommendation', 'command'])
  assert.ok(out.recommendation.candidatesSearched >= 10_000)
  assert.ok(out.recommendation.reasons.length >= 8)
})

test('plan prints a breakdown with bars, the fit and the trainable fraction', () => {
  const r = run('--targets', 'o_proj,down_proj')
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /phi-3-mini-128k-instruct \(3,821,079,552 params\) on A100-80GB/)
  assert.match(r.stdout, /weights .*█/)
  assert.match(r.stdout, /fits: .* GiB of 79\.2 GiB usable/)
  assert.match(r.stdout, /trainable: 4,456,448 parameters \(0\.12%\)/)
})

const bad: [string[], RegExp][] = [
  [['--method', 'full', '--quant', 'nf4'], /--method full cannot train nf4/],
  [['--seq', '0'], /--seq must be a whole number of tokens/],
  [['--batch', '-3'], /--batch must be a whole number/],
  [['--rank', 'abc'], /--rank must be a whole number.*"abc"/],
  [['--gpu', 'Z100'], /unknown GPU or instance type "Z100"/],
  [['--model', 'no-such-model'], /unknown model "no-such-model"/],
  [['--model', '/nonexistent/config.json'], /does not exist/],
  [['--method', 'qlora', '--quant', 'none'], /--method qlora needs a quantized base/],
]
for (const [args, message] of bad) {
  test(`plan ${args.join(' ')}: one clear line, exit 2, no stack trace`, () => {
    const r = run(...args)
    assert.equal(r.status, 2)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, message)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.doesNotMatch(r.stderr, /\n\s+at |Error:/)
  })
}

test('plan --config reads a KAITO training_config; flags override it', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const file = join(mkdtempSync(join(tmpdir(), 'headroom-plan-')), 'qlora.yaml')
  writeFileSync(
    file,
    [
      'training_config:',
      '  ModelConfig:',
      '    torch_dtype: "bfloat16"',
      '  QuantizationConfig:',
      '    load_in_4bit: true',
      '    bnb_4bit_quant_type: "nf4"',
      '    bnb_4bit_use_double_quant: true',
      '  LoraConfig:',
      '    r: 16',
      '    lora_alpha: 32',
      '    target_modules: ["qkv_proj", "o_proj"]',
      '  TrainingArguments:',
      '    output_dir: "/mnt/results"',
      '    per_device_train_batch_size: 4',
      '',
    ].join('\n'),
  )
  const fromFile = JSON.parse(run('--config', file, '--json').stdout)
  const overridden = JSON.parse(run('--config', file, '--batch', '2', '--json').stdout)
  // r 16 on qkv_proj (3072 -> 9216) and o_proj (3072 -> 3072) in 32 blocks
  assert.equal(fromFile.trainableParams, 16 * (3072 + 9216 + 3072 + 3072) * 32)
  assert.deepEqual(fromFile.matchedTargets, ['qkv_proj', 'o_proj'])
  assert.ok(overridden.peakBytes < fromFile.peakBytes, 'batch 2 from the flag instead of 4 from the file')
})
