import { test } from 'node:test'
import assert from 'node:assert/strict'
import { findModelSync, listModels } from '../../src/catalog/index.ts'

// Published totals: the hub's safetensors metadata (what model cards show as "Model size"),
// as quoted by the source named on each row. keras-hub = keras-team/keras-hub
// keras_hub/src/models/<family>/<family>_presets.py "params" metadata (commit 71453d08).
// keras-hub counts a tied lm_head twice (llama3.2_1b: 1,498,482,688), so tied models cite the hub.
const PUBLISHED: [id: string, params: number, source: string][] = [
  ['phi-3-mini-4k-instruct', 3_821_079_552, 'keras-hub phi3_mini_4k_instruct_en'],
  ['phi-3-mini-128k-instruct', 3_821_079_552, 'keras-hub phi3_mini_128k_instruct_en'],
  ['phi-3.5-mini-instruct', 3_821_079_552, 'hub safetensors total, same shapes as Phi-3-mini'],
  ['phi-3-medium-4k-instruct', 13_960_238_080, 'hub safetensors total (unsloth/Phi-3-medium-4k-instruct model_size)'],
  ['phi-3-medium-128k-instruct', 13_960_238_080, 'hub safetensors total, same shapes as Phi-3-medium-4k'],
  ['phi-4', 14_659_507_200, 'GGUF general.parameter_count of microsoft/phi-4; NVIDIA NeMo customizer num_parameters'],
  ['phi-4-mini-instruct', 3_836_021_760, 'hub safetensors total of microsoft/Phi-4-mini-instruct'],
  ['llama-2-7b', 6_738_415_616, 'keras-hub llama2_7b_en'],
  ['llama-2-13b', 13_015_864_320, 'hub safetensors total of meta-llama/Llama-2-13b-chat-hf'],
  ['llama-2-70b', 68_976_648_192, 'hub safetensors total of meta-llama/Llama-2-70b-chat-hf'],
  ['llama-3-8b', 8_030_261_248, 'keras-hub llama3_8b_en'],
  ['llama-3.1-8b', 8_030_261_248, 'keras-hub llama3.1_8b'],
  ['llama-3.1-8b-instruct', 8_030_261_248, 'keras-hub llama3.1_instruct_8b'],
  ['llama-3.1-70b', 70_553_706_496, 'hub safetensors total of meta-llama/Llama-3.3-70B-Instruct (same shapes)'],
  ['llama-3.3-70b-instruct', 70_553_706_496, 'hub safetensors total of meta-llama/Llama-3.3-70B-Instruct'],
  ['llama-3.2-1b', 1_235_814_400, 'hub safetensors total of meta-llama/Llama-3.2-1B'],
  ['llama-3.2-3b', 3_212_749_824, 'hub safetensors parameters.BF16 of meta-llama/Llama-3.2-3B-Instruct'],
  ['mistral-7b-v0.1', 7_241_732_096, 'keras-hub mistral_7b_en'],
  ['mistral-7b-v0.3', 7_248_023_552, 'keras-hub mistral_0.3_7b_en'],
  ['mistral-7b-instruct-v0.3', 7_248_023_552, 'keras-hub mistral_0.3_instruct_7b_en'],
  ['qwen2.5-0.5b', 494_032_768, 'keras-hub qwen2.5_0.5b_en'],
  ['qwen2.5-1.5b', 1_543_714_304, 'hub safetensors total of Qwen/Qwen2.5-1.5B-Instruct; keras-hub qwen2.5_math_1.5b_en'],
  ['qwen2.5-3b', 3_085_938_688, 'keras-hub qwen2.5_3b_en'],
  ['qwen2.5-7b', 7_615_616_512, 'hub safetensors total of Qwen/Qwen2.5-7B-Instruct; keras-hub qwen2.5_math_7b_en'],
  ['qwen2.5-14b', 14_770_033_664, 'GGUF general.parameter_count (ollama deepseek-r1:14b, a Qwen2.5-14B)'],
  ['qwen2.5-32b', 32_763_876_352, 'keras-hub qwen2.5_instruct_32b_en'],
  ['qwen2.5-72b', 72_706_203_648, 'keras-hub qwen2.5_instruct_72b_en'],
  ['qwen2.5-coder-32b-instruct', 32_763_876_352, 'keras-hub qwen2.5_coder_instruct_32b'],
  ['gemma-2-2b', 2_614_341_888, 'keras-hub gemma2_2b_en'],
  ['gemma-2-9b', 9_241_705_984, 'keras-hub gemma2_9b_en'],
]

for (const [id, params, source] of PUBLISHED) {
  test(`${id} has ${params.toLocaleString('en-US')} parameters (${source})`, () => {
    const arch = findModelSync(id)
    assert.ok(arch, `${id} is in the catalog`)
    assert.equal(arch.params, params)
  })
}

// Not independently confirmed to the unit: the card says "7.61B"; the config matches Qwen2.5-7B's.
test('qwen2.5-coder-7b-instruct has Qwen2.5-7B shapes (model card: 7.61B; exact total unconfirmed)', () => {
  assert.equal(findModelSync('qwen2.5-coder-7b-instruct')?.params, findModelSync('qwen2.5-7b')?.params)
})

test('every catalog model is covered by a published count or a same-shape sibling', () => {
  const confirmed = new Set(PUBLISHED.map(([, p]) => p))
  const uncovered = listModels().filter((m) => !confirmed.has(m.params)).map((m) => m.name)
  assert.deepEqual(uncovered, [])
})

test('the parts add up to params, and a tied head costs nothing', () => {
  for (const m of listModels()) {
    const perLayer = m.layerLinears.reduce((n, l) => n + l.inFeatures * l.outFeatures + (l.bias ? l.outFeatures : 0), 0)
    const total = (perLayer + m.layerNormParams) * m.numLayers + m.embedParams + m.lmHeadParams + m.finalNormParams
    assert.equal(total, m.params, m.name)
    assert.equal(m.embedParams, m.vocabSize * m.hiddenSize, m.name)
    assert.equal(m.lmHeadParams, m.tieWordEmbeddings ? 0 : m.embedParams, m.name)
  }
})

test('catalog ids are lower-case, unique, and carry a hub id', () => {
  const ids = listModels().map((m) => m.name)
  assert.equal(new Set(ids).size, ids.length)
  for (const m of listModels()) {
    assert.equal(m.name, m.name.toLowerCase())
    assert.match(m.hfId ?? '', /^[\w.-]+\/[\w.-]+$/, m.name)
  }
})

test("KAITO's tuning presets are all in the catalog", () => {
  // /work/shared/kaito-data/tuning/tuning_presets_HEAD.csv preset_key column (mistral-7b resolves to v0.3)
  for (const preset of [
    'phi-4', 'phi-4-mini-instruct', 'phi-3-mini-4k-instruct', 'phi-3-mini-128k-instruct', 'phi-3-medium-4k-instruct',
    'phi-3-medium-128k-instruct', 'phi-3.5-mini-instruct', 'mistral-7b-v0.3', 'mistral-7b',
    'qwen2.5-coder-7b-instruct', 'qwen2.5-coder-32b-instruct',
  ]) {
    assert.ok(findModelSync(preset), preset)
  }
  assert.equal(findModelSync('mistral-7b')?.name, 'mistral-7b-v0.3')
})
