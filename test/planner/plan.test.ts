import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planMemory, planWarnings } from '../../src/planner/plan.ts'
import { memoryTerms, peakBytesOf } from '../../src/planner/peak.ts'
import { usableMemoryBytes, CUDA_CONTEXT_BYTES } from '../../src/planner/overhead.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { a100_80, llama2_7b, phi3Mini, seedInput, seedLora, t4 } from './fixtures.ts'

const sum = (b: Record<string, number>) => Object.values(b).reduce((a, x) => a + x, 0)

// The seed's precision table (KAITO blog, Phi-3-mini-128k): GB = 1e9 bytes, within 10%.
const precisionTable: [string, Partial<PlanInput>, number][] = [
  ['fp32', { method: 'lora', quant: 'none', doubleQuant: false, dtype: 'fp32' }, 15.73],
  ['bf16', { method: 'lora', quant: 'none', doubleQuant: false, dtype: 'bf16' }, 8.09],
  ['int8', { method: 'qlora', quant: 'int8', doubleQuant: false }, 4.64],
  ['nf4 + double quant', { method: 'qlora', quant: 'nf4', doubleQuant: true }, 3.0],
]
for (const [name, patch, gb] of precisionTable) {
  test(`phase load ${name}: peakBytes within 10% of the seed's ${gb} GB`, () => {
    const plan = planMemory({ ...seedInput, ...patch, phase: 'load' })
    const error = Math.abs(plan.peakBytes - gb * 1e9) / (gb * 1e9)
    assert.ok(error <= 0.1, `${name}: ${plan.peakBytes / 1e9} GB vs ${gb} GB (${(error * 100).toFixed(1)}%)`)
  })
}

test('phase load counts weights and context only', () => {
  const plan = planMemory({ ...seedLora, phase: 'load' })
  assert.equal(plan.breakdown.activations + plan.breakdown.logits + plan.breakdown.gradients + plan.breakdown.optimizer + plan.breakdown.adapters, 0)
  assert.equal(plan.breakdown.weights, 2 * phi3Mini.params)
  assert.equal(plan.maxSeqLen, null)
})

test("the seed's LoRA limit: bf16, eager, no checkpointing, batch 1, r 8 on A100-80GB stops between 2,800 and 4,400 tokens", () => {
  const plan = planMemory({ ...seedLora, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] })
  assert.ok(plan.maxSeqLen !== null && plan.maxSeqLen >= 2800 && plan.maxSeqLen <= 4400, `maxSeqLen ${plan.maxSeqLen}`)
  assert.ok(planMemory({ ...seedLora, seq: 3500 }).peakBytes > 80e9)
})

test('QLoRA (nf4, double quant, checkpointing) at 3,500 tokens needs at most 35% of LoRA there', () => {
  const lora = planMemory({ ...seedLora, seq: 3500 })
  const qlora = planMemory({ ...seedInput, attention: 'eager', seq: 3500 })
  assert.ok(qlora.peakBytes <= 0.35 * lora.peakBytes, `${qlora.peakBytes / lora.peakBytes}`)
})

// The seed's trainable fractions on phi-3-mini, r 8.
const fractions: { targets: string[]; percent: string; unmatched: string[] }[] = [
  { targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], percent: '0.04', unmatched: ['q_proj', 'k_proj', 'v_proj'] },
  { targets: ['o_proj', 'down_proj'], percent: '0.12', unmatched: [] },
]
for (const f of fractions) {
  test(`targets ${f.targets.join(',')} train ${f.percent}% of phi-3-mini`, () => {
    const plan = planMemory({ ...seedInput, targets: f.targets })
    assert.equal(plan.trainablePercent.toFixed(2), f.percent)
    assert.deepEqual(plan.unmatchedTargets, f.unmatched)
    const warning = plan.warnings.find((w) => w.code === 'target_unmatched')
    if (f.unmatched.length === 0) assert.equal(warning, undefined)
    else {
      assert.ok(warning, 'a target_unmatched warning')
      assert.match(warning.message, /q_proj, k_proj, v_proj/)
      assert.match(warning.message, /qkv_proj/)
    }
  })
}

test('LoRA adapters: r x (in + out) per matched module per layer', () => {
  const plan = planMemory({ ...seedInput, targets: ['o_proj'] })
  assert.equal(plan.trainableParams, 8 * (3072 + 3072) * 32)
  assert.equal(planMemory({ ...seedInput, targets: ['o_proj'], rank: 64 }).trainableParams, 8 * plan.trainableParams)
  assert.deepEqual(planMemory({ ...seedInput, targets: 'all-linear' }).matchedTargets, ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'])
})

test('a target list that matches nothing warns that peft would refuse it', () => {
  const plan = planMemory({ ...seedInput, targets: ['q_proj'] })
  assert.equal(plan.trainableParams, 0)
  assert.ok(plan.warnings.some((w) => w.code === 'no_target_matched'))
})

const shapes: [string, PlanInput][] = [
  ['seed qlora', seedInput],
  ['lora eager', seedLora],
  ['full adamw', { ...seedLora, method: 'full', attention: 'sdpa', gradientCheckpointing: true }],
  ['load', { ...seedInput, phase: 'load' }],
  ['ddp x2', { ...seedInput, gpus: 2 }],
  ['fsdp x4 full', { ...seedLora, method: 'full', gpus: 4, parallelism: 'fsdp' }],
  ['cpu', { ...seedInput, device: 'cpu', gpu: null }],
]
for (const [name, input] of shapes) {
  test(`${name}: breakdown sums to peakBytes; peakAllocatedBytes = peak - context - slack`, () => {
    const plan = planMemory(input)
    assert.equal(sum(plan.breakdown), plan.peakBytes)
    assert.ok(plan.peakAllocatedBytes <= plan.peakBytes)
    if (input.device === 'cuda') assert.ok(plan.peakBytes - plan.peakAllocatedBytes >= CUDA_CONTEXT_BYTES - 1)
    for (const v of Object.values(plan.breakdown)) assert.ok(Number.isInteger(v) && v >= 0)
  })
}

test('device cpu has no CUDA context, allocator slack or workspace', () => {
  const plan = planMemory({ ...seedInput, device: 'cpu', gpu: null })
  assert.equal(plan.breakdown.overhead, 0)
  assert.equal(plan.peakBytes, plan.peakAllocatedBytes)
  assert.equal(plan.fits, null)
  assert.equal(plan.maxSeqLen, null)
})

test('expandable_segments leaves less allocator slack', () => {
  assert.ok(peakBytesOf({ ...seedLora, expandableSegments: true }) < peakBytesOf({ ...seedLora, expandableSegments: false }))
})

test('4-bit weights: double quantization saves 0.373 bits per quantized weight', () => {
  const single = memoryTerms({ ...seedInput, doubleQuant: false, phase: 'load' }).breakdown.weights
  const double = memoryTerms({ ...seedInput, doubleQuant: true, phase: 'load' }).breakdown.weights
  const quantized = 32 * (3072 * 9216 + 3072 * 3072 + 3072 * 16384 + 8192 * 3072)
  assert.ok(Math.abs(single - double - (quantized * 0.373) / 8) < quantized * 0.001)
})

test("peft's fp32 casts of unquantized modules make training weights larger than loaded weights", () => {
  const load = memoryTerms({ ...seedInput, phase: 'load' }).breakdown.weights
  const train = planMemory(seedInput).breakdown.weights
  const unquantized = phi3Mini.embedParams + phi3Mini.lmHeadParams + phi3Mini.finalNormParams + 32 * phi3Mini.layerNormParams
  // load also holds one 16-bit Linear being quantized (gate_up_proj); training holds fp32 instead of bf16 copies.
  const quantizing = 3072 * 16384 * 2
  assert.ok(Math.abs(train - (load - quantizing) - 2 * unquantized) <= 2)
})

test('tied embeddings store the embedding once', () => {
  const tied = { ...llama2_7b, tieWordEmbeddings: true, lmHeadParams: 0, params: llama2_7b.params - llama2_7b.lmHeadParams }
  const a = planMemory({ ...seedLora, model: llama2_7b, phase: 'load' }).breakdown.weights
  const b = planMemory({ ...seedLora, model: tied, phase: 'load' }).breakdown.weights
  assert.equal(a - b, 2 * llama2_7b.lmHeadParams)
})

test('eager attention grows with seq^2; sdpa and gradient checkpointing cut activations', () => {
  const act = (p: Partial<PlanInput>) => planMemory({ ...seedLora, ...p }).peakAllocatedBytes
  const quad = act({ seq: 4000 }) - 2 * act({ seq: 2000 }) + act({ seq: 0 + 1 })
  assert.ok(quad > 0, 'eager is superlinear in seq')
  assert.ok(act({ attention: 'sdpa', seq: 3000 }) < act({ seq: 3000 }))
  assert.ok(act({ gradientCheckpointing: true, seq: 3000 }) < act({ seq: 3000 }))
})

test('optimizers: AdamW fp32 m+v, 8-bit about a quarter, paged and SGD nothing on the device', () => {
  const opt = (optimizer: PlanInput['optimizer']) => planMemory({ ...seedInput, optimizer }).breakdown.optimizer
  const trainable = planMemory(seedInput).trainableParams
  assert.equal(opt('adamw'), trainable * 8)
  assert.ok(opt('adamw_8bit') < opt('adamw') / 3.5)
  assert.equal(opt('paged_adamw_8bit'), 0)
  assert.equal(opt('sgd'), 0)
})

test('full fine-tuning with AdamW in bf16: at least 10 bytes per parameter at the optimizer step', () => {
  const plan = planMemory({ ...seedLora, method: 'full', attention: 'sdpa', gradientCheckpointing: true, seq: 512 })
  assert.ok(plan.peakAllocatedBytes >= 10 * phi3Mini.params)
  assert.equal(plan.trainablePercent, 100)
})

test('multi-GPU: DDP keeps a full replica per GPU, FSDP shards weights, gradients and optimizer', () => {
  const full = { ...seedLora, method: 'full' as const, attention: 'sdpa' as const, gradientCheckpointing: true, seq: 1024 }
  const one = planMemory(full).peakBytes
  const ddp = planMemory({ ...full, gpus: 4, parallelism: 'ddp' }).peakBytes
  const fsdp = planMemory({ ...full, gpus: 4, parallelism: 'fsdp' }).peakBytes
  assert.ok(ddp >= one)
  assert.ok(fsdp < one / 2, `fsdp ${fsdp / 1e9} vs one ${one / 1e9}`)
})

test('fits, headroom and maxSeqLen against the usable memory of the GPU', () => {
  const plan = planMemory(seedLora)
  const usable = usableMemoryBytes(a100_80)
  assert.equal(plan.gpu?.memoryBytes, a100_80.memoryBytes)
  assert.equal(plan.headroomBytes, usable - plan.peakBytes)
  assert.equal(plan.fits, plan.peakBytes <= usable)
  const max = plan.maxSeqLen!
  assert.ok(peakBytesOf({ ...seedLora, seq: max }) <= usable)
  assert.ok(peakBytesOf({ ...seedLora, seq: max + 1 }) > usable)
})

test('warnings: does_not_fit names the fix, bf16 on a T4 suggests fp16; JSON fields in the plan, flags for the terminal', () => {
  const big = planMemory({ ...seedLora, seq: 8000 })
  const w = big.warnings.find((x) => x.code === 'does_not_fit')
  assert.ok(w)
  assert.match(w.message, /needs .* GiB, the A100-80GB has .* GiB usable: use method: "qlora" and quant: "nf4"/)
  assert.doesNotMatch(w.message, /--/)
  const flagged = planWarnings({ ...seedLora, seq: 8000 }, 'flags').find((x) => x.code === 'does_not_fit')
  assert.match(flagged?.message ?? '', /use --method qlora --quant nf4, or --grad-checkpointing/)
  const onT4 = planMemory({ ...seedInput, gpu: t4 })
  assert.ok(onT4.warnings.some((x) => x.code === 'bf16_unsupported' && /use dtype: "fp16"/.test(x.message)))
  assert.ok(planWarnings({ ...seedInput, gpu: t4 }, 'flags').some((x) => x.code === 'bf16_unsupported' && /use --dtype fp16/.test(x.message)))
  assert.deepEqual(planWarnings({ ...seedInput, gpu: t4 }, 'fields'), onT4.warnings)
})

test('planMemory is pure: same input, same plan; the input is not modified', () => {
  const input = structuredClone(seedInput)
  const a = planMemory(input)
  const b = planMemory(input)
  assert.deepEqual(a, b)
  assert.deepEqual(input, seedInput)
})

test("QLoRA's code path: peft's k-bit preparation makes embeddings, head and the stream fp32; a stack without it does not", () => {
  const input: PlanInput = { ...seedInput, gradientCheckpointing: false, seq: 4096 }
  const headroom = memoryTerms(input)
  const unprepared = memoryTerms(input, { kbitPrepared: false, quantSavesInput: false })
  // Embedding + lm_head + norms: 4 B after peft's fp32 casts, 2 B (bf16) without them.
  const unquantized = phi3Mini.embedParams + phi3Mini.lmHeadParams + phi3Mini.numLayers * phi3Mini.layerNormParams + phi3Mini.finalNormParams
  assert.equal(headroom.breakdown.weights - unprepared.breakdown.weights, 2 * unquantized)
  // Not 2x: norm internals and peft's LoRA input copies are fp32 on both paths.
  const ratio = headroom.breakdown.activations / unprepared.breakdown.activations
  assert.ok(ratio > 1.4 && ratio < 2, `prepared/unprepared activations ${ratio}`)
  // An older bitsandbytes that kept each 4-bit matmul's input adds saved tensors.
  assert.ok(memoryTerms(input, { kbitPrepared: false, quantSavesInput: true }).breakdown.activations > unprepared.breakdown.activations)
})

test('QLoRA with checkpointing at 32k tokens on Phi-3-mini: activations are twice a bf16 LoRA checkpoint (fp32 block inputs), not 5x', () => {
  const base: PlanInput = { ...seedInput, targets: 'all-linear', seq: 32768, attention: 'sdpa', gradientCheckpointing: true }
  const qlora = memoryTerms(base)
  const lora = memoryTerms({ ...base, method: 'lora', quant: 'none', doubleQuant: false })
  const ratio = qlora.breakdown.activations / lora.breakdown.activations
  assert.ok(ratio >= 1.9 && ratio <= 2.1, `QLoRA/LoRA activations ${ratio}`)
})
