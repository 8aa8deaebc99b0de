/**
 * The training_config <-> PlanInput codec: decode's rules (each one the Python trainer's, or
 * KAITO's pod for target cluster), encode, and decode(encode(x)) == x over many PlanInputs.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { findHardware, findModelSync, KAITO_PHI3_TARGETS } from '../../src/catalog/index.ts'
import type { ModelArch } from '../../src/catalog/types.ts'
import { decode, decodeExplained, encode, OPTIM_NAMES, type DecodeContext, type Sections } from '../../src/config/codec.ts'
import { ConfigError } from '../../src/errors.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { cpuHasNativeBf16 } from '../../src/runtime/capability.ts'

const phi3 = findModelSync('phi-3-mini-128k-instruct')!
const llama = findModelSync('llama-3.1-8b-instruct')!
const gemma = findModelSync('gemma-2-9b-it')!
const a100 = findHardware('A100-80GB')
const cuda = (extra: Partial<DecodeContext> = {}): DecodeContext => ({ model: phi3, device: 'cuda', hardware: a100, ...extra })

const QLORA: Sections = {
  ModelConfig: { torch_dtype: 'bfloat16' },
  QuantizationConfig: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_compute_dtype: 'bfloat16', bnb_4bit_use_double_quant: true },
  LoraConfig: { r: 8, lora_alpha: 8 },
  TrainingArguments: { per_device_train_batch_size: 1 },
}

describe('decode: the trainer’s defaults and rules', () => {
  test('an empty config is LoRA in float32 with TRL and transformers defaults', () => {
    const { input, sources } = decodeExplained({}, cuda())
    assert.deepEqual(
      { m: input.method, q: input.quant, d: input.dtype, b: input.batch, s: input.seq, gc: input.gradientCheckpointing, at: input.attention, o: input.optimizer, r: input.rank, a: input.alpha },
      { m: 'lora', q: 'none', d: 'fp32', b: 8, s: 1024, gc: true, at: 'sdpa', o: 'adamw', r: 8, a: 8 },
    )
    assert.deepEqual(input.targets, [...KAITO_PHI3_TARGETS])
    assert.deepEqual(decode({}, cuda({ model: llama })).targets, ['q_proj', 'v_proj'])
    for (const knob of ['batch', 'seq', 'gradientCheckpointing', 'optimizer', 'dtype'] as const) assert.match(sources[knob], /^default: /, knob)
    assert.equal(input.gpu?.name, 'A100-80GB')
  })

  test('4-bit: quant type defaults to fp4, double quant to off, compute dtype to float32 (BitsAndBytesConfig)', () => {
    const input = decode({ ModelConfig: { torch_dtype: 'bfloat16' }, QuantizationConfig: { load_in_4bit: true } }, cuda())
    assert.deepEqual([input.method, input.quant, input.doubleQuant, input.dtype], ['qlora', 'fp4', false, 'fp32'])
    const set = decode(QLORA, cuda())
    assert.deepEqual([set.quant, set.doubleQuant, set.dtype], ['nf4', true, 'bf16'])
  })

  test('8-bit computes in torch_dtype; YAML strings are coerced as config.py does', () => {
    const input = decode({ ModelConfig: { torch_dtype: 'float16' }, QuantizationConfig: { load_in_8bit: 'true' }, LoraConfig: { r: '16' } }, cuda())
    assert.deepEqual([input.method, input.quant, input.doubleQuant, input.dtype, input.rank], ['qlora', 'int8', false, 'fp16', 16])
  })

  test('CPU without native bf16 computes in float32; with it, in bf16; cuda is unaffected', () => {
    assert.equal(decode(QLORA, { model: phi3, device: 'cpu', cpuBf16: false }).dtype, 'fp32')
    assert.equal(decode(QLORA, { model: phi3, device: 'cpu', cpuBf16: true }).dtype, 'bf16')
    assert.equal(decode({ ModelConfig: { torch_dtype: 'float16' } }, { model: phi3, device: 'cpu', cpuBf16: false }).dtype, 'fp32')
    assert.equal(decode(QLORA, cuda({ cpuBf16: false })).dtype, 'bf16')
    assert.match(decodeExplained(QLORA, { model: phi3, device: 'cpu', cpuBf16: false }).sources.dtype, /no native bf16/)
    // A CPU decode that does not say what the CPU can do is a bug in the caller, not a silent guess.
    assert.throws(() => decode(QLORA, { model: phi3, device: 'cpu' }), TypeError)
    const onCpu = decode(QLORA, { model: phi3, device: 'cpu', cpuBf16: true, hardware: a100 })
    assert.deepEqual([onCpu.gpu, onCpu.gpus, onCpu.device], [null, 1, 'cpu'])
  })

  test('max_length is truncated at the model’s positions; an explicit seq is not; the refused max_seq_length plans nothing', () => {
    assert.equal(decode({ TrainingArguments: { max_length: 20000 } }, cuda({ model: gemma })).seq, 8192)
    assert.equal(decode({ TrainingArguments: { max_seq_length: 3000 } }, cuda()).seq, 1024, 'the old key is refused by check and the trainer; the default stands')
    assert.equal(decode({ TrainingArguments: { max_length: 2048, max_seq_length: 3000 } }, cuda()).seq, 2048)
    assert.equal(decode({}, cuda({ model: gemma, seq: 16384 })).seq, 16384)
  })

  test('gradient checkpointing: TRL on by default, the file’s false honoured, KAITO’s pod forces it on when quantized', () => {
    const off = { ...QLORA, TrainingArguments: { gradient_checkpointing: false } }
    assert.equal(decode(QLORA, cuda()).gradientCheckpointing, true)
    assert.equal(decode(off, cuda()).gradientCheckpointing, false)
    assert.equal(decode(off, cuda({ target: 'cluster' })).gradientCheckpointing, true)
    assert.equal(decode({ TrainingArguments: { gradient_checkpointing: false } }, cuda({ target: 'cluster' })).gradientCheckpointing, false)
  })

  test('torch_dtype unset: float32 in Headroom’s trainer, the checkpoint’s bf16 in KAITO’s pod', () => {
    assert.equal(decode({}, cuda()).dtype, 'fp32')
    assert.equal(decode({}, cuda({ target: 'cluster' })).dtype, 'bf16')
    assert.equal(decode({ ModelConfig: { torch_dtype: 'auto' } }, cuda()).dtype, 'fp32')
  })

  test('target_modules: list (dotted names to leaves), all-linear, a regex, DEFAULT_TARGET_MODULES, a phi-3 preset on a cluster', () => {
    assert.deepEqual(decode({ LoraConfig: { target_modules: ['model.layers.0.self_attn.qkv_proj', 'o_proj'] } }, cuda()).targets, ['qkv_proj', 'o_proj'])
    assert.equal(decode({ LoraConfig: { target_modules: 'all-linear' } }, cuda()).targets, 'all-linear')
    assert.deepEqual(decode({ LoraConfig: { target_modules: '.*(qkv|o)_proj' } }, cuda()).targets, ['qkv_proj', 'o_proj'])
    assert.deepEqual(decode({ LoraConfig: { target_modules: '(' } }, cuda()).targets, [])
    // An empty list is falsy in _model.target_modules: the default applies.
    assert.deepEqual(decode({ LoraConfig: { target_modules: [] } }, cuda({ model: llama })).targets, ['q_proj', 'v_proj'])
    assert.deepEqual(decode({}, cuda({ model: llama, env: { DEFAULT_TARGET_MODULES: 'q_proj,k_proj' } })).targets, ['q_proj', 'k_proj'])
    assert.deepEqual(decode({}, cuda({ model: llama, target: 'cluster', presetName: 'phi-3-mini-4k-instruct' })).targets, [...KAITO_PHI3_TARGETS])
    assert.deepEqual(decode({}, cuda({ model: llama, target: 'local', presetName: 'phi-3-mini-4k-instruct' })).targets, ['q_proj', 'v_proj'])
  })

  test('--method overrides as train.py does', () => {
    const q = decode({ ModelConfig: { torch_dtype: 'bfloat16' } }, cuda({ method: 'qlora' }))
    assert.deepEqual([q.method, q.quant, q.doubleQuant], ['qlora', 'nf4', true])
    const l = decode(QLORA, cuda({ method: 'lora' }))
    assert.deepEqual([l.method, l.quant, l.dtype], ['lora', 'none', 'bf16'])
    assert.equal(decode({}, cuda({ method: 'full' })).method, 'full')
    assert.throws(() => decode(QLORA, cuda({ method: 'full' })), (e: unknown) => e instanceof ConfigError && /remove QuantizationConfig\.load_in_4bit/.test(e.message))
  })

  test('LoraConfig.lora_dropout: the file\'s value (YAML strings coerced), else peft\'s default 0.0, and the source says which', () => {
    const set = decodeExplained({ LoraConfig: { lora_dropout: 0.05 } }, cuda())
    assert.equal(set.input.loraDropout, 0.05)
    assert.equal(set.sources.loraDropout, 'LoraConfig.lora_dropout')
    assert.equal(decode({ LoraConfig: { lora_dropout: '0.1' } }, cuda()).loraDropout, 0.1)
    const unset = decodeExplained(QLORA, cuda())
    assert.equal(unset.input.loraDropout, 0)
    assert.match(unset.sources.loraDropout, /^default: peft LoraConfig\.lora_dropout/)
  })

  test('attention and optimizer names', () => {
    const att = (v: string) => decode({ ModelConfig: { attn_implementation: v } }, cuda()).attention
    assert.deepEqual(['eager', 'sdpa', 'flash_attention_2', 'flash_attention_3', 'flex_attention'].map(att), ['eager', 'sdpa', 'flash', 'flash', 'sdpa'])
    const opt = (v: string) => decode({ TrainingArguments: { optim: v } }, cuda()).optimizer
    assert.deepEqual(
      ['adamw_torch', 'adamw_torch_fused', 'adamw_hf', 'adamw_8bit', 'adamw_bnb_8bit', 'paged_adamw_8bit', 'paged_adamw_32bit', 'sgd', 'adafactor', 'paged_lion_8bit'].map(opt),
      ['adamw', 'adamw', 'adamw', 'adamw_8bit', 'adamw_8bit', 'paged_adamw_8bit', 'adamw', 'sgd', 'adamw', 'paged_adamw_8bit'],
    )
  })

  test('PYTORCH_CUDA_ALLOC_CONF: expandable segments unless the environment says otherwise', () => {
    assert.equal(decode({}, cuda()).expandableSegments, true)
    assert.equal(decode({}, cuda({ env: { PYTORCH_CUDA_ALLOC_CONF: 'max_split_size_mb:128' } })).expandableSegments, false)
  })
})

describe('encode', () => {
  test('writes one name per knob and keeps the rest of the file', () => {
    const base: Sections = { TrainingArguments: { output_dir: '/mnt/results', max_seq_length: 99 }, DatasetConfig: { shuffle_dataset: true }, QuantizationConfig: { load_in_8bit: true } }
    const input = decode(QLORA, cuda())
    const out = encode({ ...input, optimizer: 'adamw', attention: 'eager' }, base)
    assert.equal(out.TrainingArguments.optim, OPTIM_NAMES.adamw)
    assert.equal(out.TrainingArguments.optim, 'adamw_torch_fused', 'what transformers 5 runs when optim is unset')
    assert.equal(out.TrainingArguments.output_dir, '/mnt/results')
    assert.equal(out.TrainingArguments.max_seq_length, undefined, 'the old name would shadow nothing but confuse readers')
    assert.equal(out.QuantizationConfig.load_in_8bit, undefined)
    assert.equal(out.ModelConfig.attn_implementation, 'eager')
    assert.deepEqual(out.DatasetConfig, { shuffle_dataset: true })
    assert.equal(out.LoraConfig.lora_dropout, 0, 'peft default written out, so the file says what was planned')
    assert.equal(encode({ ...input, loraDropout: 0.05 }).LoraConfig.lora_dropout, 0.05)
    assert.equal(decode(encode({ ...input, loraDropout: 0.05 }, base), cuda()).loraDropout, 0.05)
    assert.deepEqual(base.QuantizationConfig, { load_in_8bit: true }, 'base is not modified')
    // sdpa is the default and KAITO's ModelConfig has no such key: not written.
    assert.equal(encode({ ...input, attention: 'sdpa' }, { ModelConfig: { attn_implementation: 'eager' } }).ModelConfig.attn_implementation, undefined)
  })
})

describe('the levers (issue 13): TrainingArguments.loss_implementation, activation_offloading, packing', () => {
  test('decode reads the three keys, with their sources; absent means full, off, off', () => {
    const { input, sources } = decodeExplained({ ...QLORA, TrainingArguments: { loss_implementation: 'chunked', activation_offloading: true, packing: 'true' } }, cuda())
    assert.deepEqual([input.loss, input.offloadActivations, input.packing], ['chunked', true, true])
    assert.equal(sources.loss, 'TrainingArguments.loss_implementation')
    assert.equal(sources.offloadActivations, 'TrainingArguments.activation_offloading')
    assert.equal(sources.packing, 'TrainingArguments.packing')
    const plain = decodeExplained(QLORA, cuda())
    assert.deepEqual([plain.input.loss, plain.input.offloadActivations, plain.input.packing], ['full', false, false])
    assert.match(plain.sources.loss, /^default: /)
    assert.match(plain.sources.packing, /^default: TRL SFTConfig.packing/)
    // A value the trainer does not run is planned as the full loss, and the source says why.
    const odd = decodeExplained({ TrainingArguments: { loss_implementation: 'fused' } }, cuda())
    assert.equal(odd.input.loss, 'full')
    assert.match(odd.sources.loss, /is fused, not full or chunked/)
  })

  test('encode writes a lever that is on; a default is left out unless the file had the key', () => {
    const input = decode(QLORA, cuda())
    const on = encode({ ...input, loss: 'chunked', offloadActivations: true, packing: true }, QLORA)
    assert.equal(on.TrainingArguments.loss_implementation, 'chunked')
    assert.equal(on.TrainingArguments.activation_offloading, true)
    assert.equal(on.TrainingArguments.packing, true)
    const off = encode({ ...input, loss: 'full', offloadActivations: false, packing: false }, QLORA)
    for (const key of ['loss_implementation', 'activation_offloading', 'packing']) assert.ok(!(key in off.TrainingArguments), key)
    // The file said packing: true, the plan says false: written as false, so the file says what was planned.
    const turnedOff = encode({ ...input, packing: false, loss: 'full' }, { TrainingArguments: { packing: true, loss_implementation: 'chunked' } })
    assert.equal(turnedOff.TrainingArguments.packing, false)
    assert.ok(!('loss_implementation' in turnedOff.TrainingArguments), "full is the default and KAITO's parser rejects the key")
    assert.equal(decode(turnedOff, cuda()).loss, 'full')
  })
})

/** A small deterministic PRNG (mulberry32), so a failure names a reproducible case. */
function rng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomInput(r: () => number, model: ModelArch, device: 'cpu' | 'cuda'): PlanInput {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]
  const method = pick(['full', 'lora', 'qlora'] as const)
  const quant = method === 'qlora' ? pick(['int8', 'nf4', 'fp4'] as const) : 'none'
  const names = model.layerLinears.map((m) => m.name)
  const subset = names.filter(() => r() < 0.5)
  return {
    model,
    phase: 'train',
    method,
    dtype: pick(['fp32', 'fp16', 'bf16'] as const),
    quant,
    doubleQuant: (quant === 'nf4' || quant === 'fp4') && r() < 0.5,
    rank: pick([1, 4, 8, 16, 64, 256]),
    alpha: pick([1, 8, 16, 32, 0.5]),
    loraDropout: pick([0, 0.05, 0.1, 0.5]),
    targets: r() < 0.2 ? 'all-linear' : subset.length ? subset : [names[0]],
    batch: 1 + Math.floor(r() * 32),
    seq: 1 + Math.floor(r() * model.maxPositionEmbeddings),
    gradientCheckpointing: r() < 0.5,
    attention: pick(device === 'cpu' ? (['eager', 'sdpa'] as const) : (['eager', 'sdpa', 'flash'] as const)),
    optimizer: pick(['adamw', 'adamw_8bit', 'paged_adamw_8bit', 'sgd'] as const),
    gpu: device === 'cuda' ? a100.gpu : null,
    gpus: device === 'cuda' ? a100.count : 1,
    parallelism: 'ddp',
    device,
    expandableSegments: true,
    loss: pick(['full', 'chunked'] as const),
    offloadActivations: r() < 0.5,
    packing: r() < 0.5,
  }
}

describe('decode(encode(x)) == x', () => {
  const models = [phi3, llama, gemma]
  for (const device of ['cuda', 'cpu'] as const) {
    test(`500 random PlanInputs on ${device}`, () => {
      const r = rng(device === 'cuda' ? 8 : 9)
      for (let i = 0; i < 500; i++) {
        const x = randomInput(r, models[i % models.length], device)
        const base = i % 2 ? {} : JSON.parse(JSON.stringify(QLORA))
        const ctx: DecodeContext = { model: x.model, device, hardware: a100, cpuBf16: true, method: x.method === 'full' ? 'full' : 'auto' }
        const sections = encode(x, base)
        assert.deepEqual(decode(sections, ctx), x, `case ${i}: ${JSON.stringify({ ...x, model: x.model.name, gpu: x.gpu?.name })}`)
        // Through YAML-shaped JSON too (what a file holds).
        assert.deepEqual(decode(JSON.parse(JSON.stringify(sections)), ctx), x)
        if (device === 'cpu') assert.equal(decode(sections, { ...ctx, cpuBf16: false }).dtype, 'fp32', 'a CPU without bf16 computes in float32 whatever the file says')
      }
    })
  }
})

describe('cpuHasNativeBf16', () => {
  const withFlags = (flags: string) => () => `processor\t: 0\nflags\t\t: fpu sse2 ${flags}\n`
  test('HEADROOM_CPU_BF16 forces the answer either way', () => {
    assert.equal(cpuHasNativeBf16({ HEADROOM_CPU_BF16: '1' }, withFlags('')), true)
    assert.equal(cpuHasNativeBf16({ HEADROOM_CPU_BF16: '0' }, withFlags('avx512_bf16 amx_bf16')), false)
  })
  test('otherwise /proc/cpuinfo’s avx512_bf16 or amx_bf16 flags decide; unreadable means no', () => {
    assert.equal(cpuHasNativeBf16({}, withFlags('avx512f avx512_bf16')), true)
    assert.equal(cpuHasNativeBf16({}, withFlags('amx_tile amx_bf16')), true)
    assert.equal(cpuHasNativeBf16({}, withFlags('avx512f avx2')), false)
    assert.equal(cpuHasNativeBf16({ HEADROOM_CPU_BF16: 'maybe' }, withFlags('avx2')), false)
    assert.equal(
      cpuHasNativeBf16({}, () => {
        throw new Error('ENOENT')
      }),
      false,
    )
  })
})
