import { test } from 'node:test'
import assert from 'node:assert/strict'
import { archFromHfConfig, findModelSync, linearModuleNames } from '../../src/catalog/index.ts'
import type { ModelArch } from '../../src/catalog/index.ts'

function model(id: string): ModelArch {
  const arch = findModelSync(id)
  assert.ok(arch, id)
  return arch
}

const shape = (arch: ModelArch) => arch.layerLinears.map((m) => `${m.name} ${m.inFeatures}x${m.outFeatures}${m.bias ? '+b' : ''}`)

test('phi3 fuses q/k/v and gate/up, so q_proj matches nothing', () => {
  const phi = model('phi-3-mini-128k-instruct')
  assert.deepEqual(linearModuleNames(phi), ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'lm_head'])
  assert.ok(!linearModuleNames(phi).includes('q_proj'))
  assert.deepEqual(shape(phi), ['qkv_proj 3072x9216', 'o_proj 3072x3072', 'gate_up_proj 3072x16384', 'down_proj 8192x3072'])
})

test('phi3 with grouped-query attention sizes qkv_proj as (heads + 2 kv heads) x head_dim', () => {
  // Phi-3-medium: 40 heads, 10 KV heads, head_dim 128 -> (40 + 20) * 128
  assert.equal(model('phi-3-medium-4k-instruct').layerLinears[0].outFeatures, 7680)
  // Phi-4-mini: 24 heads, 8 KV heads, head_dim 128 -> (24 + 16) * 128
  assert.equal(model('phi-4-mini-instruct').layerLinears[0].outFeatures, 5120)
})

test('llama, mistral, qwen2 and gemma2 name seven projections', () => {
  const seven = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head']
  for (const id of ['llama-3.1-8b', 'mistral-7b-v0.3', 'qwen2.5-7b', 'gemma-2-2b']) {
    assert.deepEqual(linearModuleNames(model(id)), seven, id)
  }
  assert.deepEqual(shape(model('llama-3.1-8b')), [
    'q_proj 4096x4096', 'k_proj 4096x1024', 'v_proj 4096x1024', 'o_proj 4096x4096',
    'gate_proj 4096x14336', 'up_proj 4096x14336', 'down_proj 14336x4096',
  ])
})

test('qwen2 has bias on q, k and v only', () => {
  const biased = model('qwen2.5-0.5b').layerLinears.filter((m) => m.bias).map((m) => m.name)
  assert.deepEqual(biased, ['q_proj', 'k_proj', 'v_proj'])
})

test('gemma2 has head_dim 256 apart from hidden_size, four norms per layer and a tied head', () => {
  const g = model('gemma-2-2b')
  assert.deepEqual(shape(g).slice(0, 4), ['q_proj 2304x2048', 'k_proj 2304x1024', 'v_proj 2304x1024', 'o_proj 2048x2304'])
  assert.equal(g.layerNormParams, 4 * 2304)
  assert.equal(g.lmHeadParams, 0)
  assert.equal(g.slidingWindow, 4096)
})

test('llama reads attention_bias and mlp_bias', () => {
  const base = { model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }
  const plain = archFromHfConfig(base, 'tiny')
  const biased = archFromHfConfig({ ...base, attention_bias: true, mlp_bias: true }, 'tiny-bias')
  assert.ok(plain.layerLinears.every((m) => !m.bias))
  assert.ok(biased.layerLinears.every((m) => m.bias))
  // 4 attention biases of 64 + 2 of 128 + 1 of 64, per layer, 2 layers
  assert.equal(biased.params - plain.params, 2 * (4 * 64 + 2 * 128 + 64))
})

test('mistral ignores attention_bias (its Linear layers are built with bias=False)', () => {
  const c = { model_type: 'mistral', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 10, attention_bias: true }
  assert.ok(archFromHfConfig(c, 'm').layerLinears.every((m) => !m.bias))
})

test('missing optional fields take transformers defaults', () => {
  const c = { model_type: 'gemma2', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10 }
  const g = archFromHfConfig(c, 'g')
  assert.equal(g.numKeyValueHeads, 4)
  assert.equal(g.headDim, 16)
  assert.equal(g.tieWordEmbeddings, true) // Gemma2Config default
  assert.equal(g.maxPositionEmbeddings, 8192)
  assert.equal(archFromHfConfig({ ...c, model_type: 'llama' }, 'l').tieWordEmbeddings, false)
})

test('qwen2 sliding_window counts only when use_sliding_window is true', () => {
  const c = { model_type: 'qwen2', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10, sliding_window: 131072 }
  assert.equal(archFromHfConfig({ ...c, use_sliding_window: false }, 'q').slidingWindow, undefined)
  assert.equal(archFromHfConfig({ ...c, use_sliding_window: true, sliding_window: 4096 }, 'q').slidingWindow, 4096)
  assert.equal(model('mistral-7b-v0.1').slidingWindow, 4096)
  assert.equal(model('mistral-7b-v0.3').slidingWindow, undefined)
})
