/** checkConfig with the real catalog and planner, and init's output checked by check. */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { findHardware, findModelSync } from '../../src/catalog/index.ts'
import { checkConfig } from '../../src/config/check.ts'
import { generateTuningConfigMap } from '../../src/config/generate.ts'
import { parseTuningConfig } from '../../src/config/parse.ts'
import { toPlanInput } from '../../src/config/plan-input.ts'
import { ExitError } from '../../src/errors.ts'
import { GIB } from '../../src/units.ts'

const dir = fileURLToPath(new URL('../fixtures/kaito/', import.meta.url))
const fixture = (f: string) => readFileSync(dir + f)

const OVERSIZED = `training_config:
  ModelConfig:
    torch_dtype: bfloat16
  LoraConfig:
    r: 16
    target_modules: all-linear
  TrainingArguments:
    per_device_train_batch_size: 8
    max_length: 2048
    gradient_checkpointing: false
`

describe('checkConfig', () => {
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.yaml') && x !== 'inference-params.yaml')) {
    test(`${f} is valid on a cluster, with the model and GPU its Workspace names`, async () => {
      const r = await checkConfig(fixture(f), { file: f, target: 'cluster' })
      assert.equal(r.valid, true, JSON.stringify(r.issues))
    })
  }

  test('the seed ConfigMap on phi-3 and an A100: valid, warns about q/k/v, and plans', async () => {
    const r = await checkConfig(fixture('kaito_configmap_tuning_phi_3.yaml'), { model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB', method: 'qlora' })
    assert.equal(r.valid, true)
    const w = r.warnings.find((i) => i.code === 'target_modules_unmatched')
    assert.ok(w)
    assert.match(w.message, /use qkv_proj/)
    assert.ok(r.plan)
    assert.deepEqual(r.plan.unmatchedTargets.sort(), ['k_proj', 'q_proj', 'v_proj'])
    assert.deepEqual(r.plan.matchedTargets, ['o_proj'])
    assert.equal(r.plan.fits, true)
    const { sources, ...context } = r.context
    assert.deepEqual(context, { target: 'local', model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB', gpus: 1, method: 'qlora', seq: 1024 })
    // Each planned knob names its source: the file's key, or the runtime default it fell back to.
    assert.equal(sources?.seq, 'default: TRL SFTConfig.max_length')
    assert.equal(sources?.quant, 'QuantizationConfig.bnb_4bit_quant_type')
  })

  test('a config that does not fit is an error naming the knobs that fix it', async () => {
    const r = await checkConfig(OVERSIZED, { file: 'big.yaml', model: 'phi-3-mini-128k-instruct', gpu: 'A10' })
    assert.equal(r.valid, false)
    const e = r.issues.find((i) => i.code === 'memory_exceeds_gpu')
    assert.ok(e, JSON.stringify(r.issues))
    assert.match(e.message, /^needs \d+\.\d GiB, the A10 has 24\.0 GiB: /)
    assert.match(e.message, /per_device_train_batch_size|gradient_checkpointing|load_in_4bit/)
    assert.equal(r.plan?.fits, false)
    // Each fix the message names really fits.
    const seq = /max_length to (\d+)/.exec(e.message)?.[1]
    if (seq) {
      const fixed = await checkConfig(OVERSIZED.replace('max_length: 2048', `max_length: ${seq}`), { model: 'phi-3-mini-128k-instruct', gpu: 'A10' })
      assert.ok(!fixed.issues.some((i) => i.code === 'memory_exceeds_gpu'))
    }
    const batch = /per_device_train_batch_size to (\d+)/.exec(e.message)?.[1]
    if (batch) {
      const fixed = await checkConfig(OVERSIZED.replace('per_device_train_batch_size: 8', `per_device_train_batch_size: ${batch}`), { model: 'phi-3-mini-128k-instruct', gpu: 'A10' })
      assert.ok(!fixed.issues.some((i) => i.code === 'memory_exceeds_gpu'))
    }
  })

  test('--seq overrides max_length and is named in the fix', async () => {
    const r = await checkConfig(OVERSIZED, { model: 'phi-3-mini-128k-instruct', gpu: 'A10', seq: 65536 })
    assert.equal(r.context.seq, 65536)
    const e = r.issues.find((i) => i.code === 'memory_exceeds_gpu')
    assert.ok(e)
  })

  test('memory overflow on a GPU taken from the Workspace is a warning', async () => {
    const ws = readFileSync(`${dir}kaito_workspace_tuning_phi_3.yaml`, 'utf8').replace('Standard_NC24ads_A100_v4', 'Standard_NV36ads_A10_v5').replace('  method: qlora\n', '  method: lora\n  config: big\n')
    const cm = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  training_config.yaml: |\n${OVERSIZED.split('\n').map((l) => `    ${l}`).join('\n')}\n`
    const r = await checkConfig(`${cm}---\n${ws}`, { file: 'ws.yaml' })
    assert.equal(r.valid, true, JSON.stringify(r.issues))
    const w = r.warnings.find((i) => i.code === 'memory_exceeds_gpu')
    assert.ok(w)
    assert.match(w.message, /pass --gpu to make this an error/)
  })

  test('batch 1 where batch 2 fits is a best-practice warning', async () => {
    const r = await checkConfig(fixture('qlora-params.yaml'), { model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB' })
    const w = r.warnings.find((i) => i.code === 'batch_one')
    assert.ok(w)
    assert.equal(w.path, 'TrainingArguments.per_device_train_batch_size')
    assert.match(w.message, /set per_device_train_batch_size: [24]/)
  })

  test('bf16 on a T4 is an error with the fp16 fix', async () => {
    const r = await checkConfig(fixture('lora-params.yaml'), { model: 'phi-3-mini-128k-instruct', gpu: 'T4' })
    assert.equal(r.valid, false)
    assert.deepEqual(r.issues.map((i) => `${i.code} ${i.path}`), ['bf16_unsupported TrainingArguments.bf16'])
    assert.ok(r.plan, 'still planned: the error is about precision, not the values')
  })

  test('unknown model, GPU, method or seq are usage errors (exit 2)', async () => {
    for (const opts of [{ model: 'no-such-model-xyz' }, { gpu: 'Z9000' }, { method: 'full' as 'lora' }, { seq: -5 }, { seq: 1.5 }]) {
      await assert.rejects(checkConfig(fixture('lora-params.yaml'), opts), (e: unknown) => e instanceof ExitError && e.exitCode === 2, JSON.stringify(opts))
    }
  })

  test('invalid input never rejects: it comes back as issues', async () => {
    for (const text of ['', '{{{{', '- a\n- b', 'training_config: 5', '\u0000\u0001']) {
      const r = await checkConfig(text, { model: 'phi-3-mini-128k-instruct', gpu: 'A10' })
      assert.equal(r.valid, false, text)
      assert.ok(r.issues.length > 0)
    }
  })
})

describe('toPlanInput', () => {
  const model = findModelSync('phi-3-mini-128k-instruct')!
  const hardware = findHardware('Standard_NC48ads_A100_v4')

  test('the qlora template maps to nf4 + double quant, bf16, batch 1, TRL defaults for the rest', () => {
    const cfg = parseTuningConfig(fixture('qlora-params.yaml')).value!
    const input = toPlanInput(cfg, { model, hardware })
    assert.equal(input.method, 'qlora')
    assert.equal(input.quant, 'nf4')
    assert.equal(input.doubleQuant, true)
    assert.equal(input.dtype, 'bf16')
    assert.equal(input.batch, 1)
    assert.equal(input.seq, 1024)
    assert.equal(input.gradientCheckpointing, true)
    assert.equal(input.optimizer, 'adamw')
    assert.equal(input.rank, 8)
    // No target_modules: the trainer (like KAITO) uses KAITO's Phi-3 list, of which o_proj and down_proj match.
    assert.deepEqual(input.targets, ['k_proj', 'q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj'])
    assert.equal(input.gpus, 2)
    assert.equal(input.gpu?.name, 'A100-80GB')
  })

  test('every memory knob is read', () => {
    const cfg = parseTuningConfig(
      `training_config:
  ModelConfig: {torch_dtype: float16, attn_implementation: eager}
  QuantizationConfig: {load_in_8bit: true}
  LoraConfig: {r: 32, lora_alpha: 64, target_modules: [qkv_proj, o_proj]}
  TrainingArguments: {per_device_train_batch_size: 4, max_length: 3000, gradient_checkpointing: false, optim: paged_adamw_8bit}
`,
    ).value!
    const input = toPlanInput(cfg, { model, hardware: null, seq: undefined })
    assert.deepEqual(
      { m: input.method, q: input.quant, d: input.dtype, r: input.rank, a: input.alpha, t: input.targets, b: input.batch, s: input.seq, gc: input.gradientCheckpointing, at: input.attention, o: input.optimizer, g: input.gpu },
      // Headroom's trainer passes gradient_checkpointing: false to prepare_model_for_kbit_training: off.
      { m: 'qlora', q: 'int8', d: 'fp16', r: 32, a: 64, t: ['qkv_proj', 'o_proj'], b: 4, s: 3000, gc: false, at: 'eager', o: 'paged_adamw_8bit', g: null },
    )
    assert.equal(toPlanInput(cfg, { model, seq: 512 }).seq, 512)
    // KAITO's pod calls prepare_model_for_kbit_training(model), whose default turns checkpointing on.
    assert.equal(toPlanInput(cfg, { model, target: 'cluster' }).gradientCheckpointing, true)
  })

  test('unset targets on a phi-3 cluster use KAITO DEFAULT_TARGET_MODULES', () => {
    const input = toPlanInput({}, { model, target: 'cluster' })
    assert.deepEqual(input.targets, ['k_proj', 'q_proj', 'v_proj', 'o_proj', 'gate_proj', 'down_proj', 'up_proj'])
  })
})

describe('init output passes check', () => {
  for (const [modelId, gpu, goal, seq] of [
    ['phi-3-mini-128k-instruct', 'A10', 'max-context', undefined],
    ['phi-3-mini-128k-instruct', 'T4', 'max-throughput', 2048],
    ['llama-3.1-8b-instruct', 'Standard_NC24ads_A100_v4', 'max-throughput', 4096],
    ['qwen2.5-7b-instruct', 'L4', 'max-context', undefined],
  ] as const) {
    test(`${modelId} on ${gpu} (${goal}${seq ? `, seq ${seq}` : ''})`, async () => {
      const model = findModelSync(modelId)!
      const hardware = findHardware(gpu)
      const out = generateTuningConfigMap({ model, hardware, goal, seq })
      assert.ok(out, 'something fits')
      const { yaml, recommendation } = out
      assert.match(yaml, /^# Predicted peak: \d+\.\d GiB per GPU of \d+\.\d GiB; headroom \d+\.\d GiB\.$/m)
      for (const knob of ['torch_dtype', 'load_in_', 'r', 'target_modules', 'per_device_train_batch_size', 'max_length', 'gradient_checkpointing', 'optim']) {
        assert.match(yaml, new RegExp(`^\\s+${knob}\\w*: .*# memory: `, 'm'), `${knob} has a memory comment`)
      }
      const r = await checkConfig(yaml, { model: modelId, gpu, target: 'local', seq })
      assert.equal(r.valid, true, JSON.stringify(r.issues))
      assert.deepEqual(r.warnings.filter((w) => w.code !== 'batch_one'), [])
      assert.ok(r.plan?.fits)
      // check plans what init planned.
      assert.ok(Math.abs(r.plan!.peakBytes - recommendation.plan.peakBytes) < 0.01 * GIB, `${r.plan!.peakBytes} vs ${recommendation.plan.peakBytes}`)
    })
  }
})
