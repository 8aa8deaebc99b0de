import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ExitError } from '../../src/errors.ts'
import { parsePlanRequest, planFromRequest, resolvePlanInput } from '../../src/request/index.ts'
import { PLAN_DEFAULTS } from '../../src/planner/fields.ts'

test('no fields: the seed case (phi-3-mini-128k, KAITO qlora template, A100-80GB, seq 2048)', async () => {
  const input = await resolvePlanInput({})
  assert.equal(input.model.name, 'phi-3-mini-128k-instruct')
  assert.equal(input.method, 'qlora')
  assert.equal(input.quant, 'nf4')
  assert.equal(input.doubleQuant, true)
  assert.equal(input.dtype, 'bf16')
  assert.equal(input.rank, 8)
  assert.equal(input.alpha, 8)
  assert.equal(input.batch, 1)
  assert.equal(input.seq, PLAN_DEFAULTS.seq)
  assert.equal(input.gradientCheckpointing, true, 'prepare_model_for_kbit_training turns checkpointing on')
  assert.equal(input.gpu?.name, 'A100-80GB')
  assert.equal(input.phase, 'train')
})

// The seed's precision rows as requests: a dtype alone is an unquantized precision.
const implied: [object, { method: string; quant: string; doubleQuant: boolean; gradientCheckpointing: boolean }][] = [
  [{ phase: 'load', dtype: 'fp32' }, { method: 'lora', quant: 'none', doubleQuant: false, gradientCheckpointing: false }],
  [{ phase: 'load', quant: 'int8' }, { method: 'qlora', quant: 'int8', doubleQuant: false, gradientCheckpointing: true }],
  [{ quant: 'nf4' }, { method: 'qlora', quant: 'nf4', doubleQuant: false, gradientCheckpointing: true }],
  [{ quant: 'nf4', doubleQuant: true }, { method: 'qlora', quant: 'nf4', doubleQuant: true, gradientCheckpointing: true }],
  [{ method: 'lora' }, { method: 'lora', quant: 'none', doubleQuant: false, gradientCheckpointing: false }],
  [{ method: 'qlora', gradientCheckpointing: false }, { method: 'qlora', quant: 'nf4', doubleQuant: true, gradientCheckpointing: false }],
  [{ method: 'full' }, { method: 'full', quant: 'none', doubleQuant: false, gradientCheckpointing: false }],
]
for (const [req, want] of implied) {
  test(`request ${JSON.stringify(req)} resolves method/quant/double quant/checkpointing`, async () => {
    const i = await resolvePlanInput(req)
    assert.deepEqual({ method: i.method, quant: i.quant, doubleQuant: i.doubleQuant, gradientCheckpointing: i.gradientCheckpointing }, want)
  })
}

test('targets: comma list, array and all-linear; phi-3 defaults to KAITO DEFAULT_TARGET_MODULES', async () => {
  assert.deepEqual((await resolvePlanInput({ targets: 'o_proj, down_proj' })).targets, ['o_proj', 'down_proj'])
  assert.deepEqual((await resolvePlanInput({ targets: ['qkv_proj'] })).targets, ['qkv_proj'])
  assert.equal((await resolvePlanInput({ targets: 'all-linear' })).targets, 'all-linear')
  assert.ok(((await resolvePlanInput({})).targets as string[]).includes('gate_proj'))
  assert.deepEqual((await resolvePlanInput({ model: 'llama-3.1-8b' })).targets, ['q_proj', 'v_proj'])
})

test('an Azure SKU gives the GPU and its count; device cpu drops the GPU', async () => {
  const sku = await resolvePlanInput({ gpu: 'Standard_NC48ads_A100_v4' })
  assert.equal(sku.gpu?.name, 'A100-80GB')
  assert.equal(sku.gpus, 2)
  const cpu = await resolvePlanInput({ device: 'cpu' })
  assert.equal(cpu.gpu, null)
})

// Invalid requests: exit 2, the field in path and message, the value, what to do.
const invalid: [object, string, RegExp][] = [
  [{ method: 'full', quant: 'nf4' }, 'quant', /method full cannot train nf4-quantized weights.*use method qlora/],
  [{ method: 'qlora', quant: 'none' }, 'quant', /method qlora needs a quantized base: add quant nf4/],
  [{ method: 'lora', quant: 'int8' }, 'quant', /method lora .* use method qlora, or drop quant/],
  [{ seq: 0 }, 'seq', /seq must be a whole number of tokens from 1 to 10,000,000.*got 0/],
  [{ batch: 99_999_999_999 }, 'batch', /batch must be a whole number of sequences from 1 to 65,536.*got 99999999999/],
  [{ batch: -3 }, 'batch', /batch must be a whole number .*got -3/],
  [{ rank: 'abc' }, 'rank', /rank must be a whole number.*got "abc"/],
  [{ rank: 2.5 }, 'rank', /got 2.5/],
  [{ dtype: 'fp8' }, 'dtype', /dtype must be one of fp32, fp16, bf16; got "fp8"/],
  [{ gpu: 'Z100' }, 'gpu', /unknown GPU or instance type "Z100"/],
  [{ model: 'not-a-model-7b' }, 'model', /unknown model "not-a-model-7b"/],
  [{ seqLen: 10 }, 'seqLen', /unknown field "seqLen"/],
  [{ quant: 'int8', doubleQuant: true }, 'doubleQuant', /doubleQuant applies to 4-bit quantization only/],
  [{ method: 'full', rank: 16 }, 'rank', /rank sets the LoRA rank/],
  [{ device: 'cpu', attention: 'flash' }, 'attention', /flash needs a CUDA GPU/],
  [{ targets: ' , ' }, 'targets', /^targets is empty/],
]
for (const [req, path, message] of invalid) {
  test(`invalid ${JSON.stringify(req)}: ExitError on ${path}`, async () => {
    await assert.rejects(planFromRequest(req), (err: unknown) => {
      assert.ok(err instanceof ExitError, String(err))
      assert.equal(err.exitCode, 2)
      assert.equal(err.path, path)
      assert.match(err.message, message)
      assert.ok(!err.message.includes('\n'), 'one line')
      return true
    })
  })
}

test('flag names on the command line, field names in JSON', () => {
  assert.throws(() => parsePlanRequest({ gradientCheckpointing: 'yes' }, 'flags'), /--grad-checkpointing must be true or false/)
  assert.throws(() => parsePlanRequest({ gradientCheckpointing: 'yes' }), /gradientCheckpointing must be true or false/)
  assert.throws(() => parsePlanRequest([1, 2]), /must be a JSON object/)
})

test('planFromRequest returns the MemoryPlan of the resolved input', async () => {
  const plan = await planFromRequest({ method: 'lora', attention: 'eager', gradientCheckpointing: false, batch: 1 })
  assert.equal(plan.model.name, 'phi-3-mini-128k-instruct')
  assert.ok(plan.maxSeqLen! >= 2800 && plan.maxSeqLen! <= 4400)
})
