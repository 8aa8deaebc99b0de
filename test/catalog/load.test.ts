import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ExitError } from '../../src/errors.ts'
import { archFromHfConfig, findModelSync, listModels, loadModel } from '../../src/catalog/index.ts'
import { PHI3_MODELS } from '../../src/catalog/families/phi3.ts'

const dir = mkdtempSync(join(tmpdir(), 'headroom-catalog-'))
const write = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}
const PHI3_MINI = { ...PHI3_MODELS.find((m) => m.id === 'phi-3-mini-4k-instruct')!.config, architectures: ['Phi3ForCausalLM'] }

/** A fetch that fails the test if called: proves a lookup needed no network. */
const noNetwork = (async () => {
  throw new Error('network used')
}) as unknown as typeof fetch

/** Asserts the promise rejects with a one-line ExitError (exit 2) whose message matches. */
async function rejectsExit(p: Promise<unknown>, re: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ExitError, `expected ExitError, got ${String(err)}`)
    assert.equal(err.exitCode, 2)
    assert.ok(!err.message.includes('\n'), 'one line')
    assert.match(err.message, re)
    return true
  })
}

test('a config.json file loads and counts the same parameters as the catalog', async () => {
  const arch = await loadModel(write('phi3.json', JSON.stringify(PHI3_MINI)))
  assert.equal(arch.params, 3_821_079_552)
  assert.equal(arch.modelType, 'phi3')
  assert.match(arch.name, /phi3\.json$/)
})

test('a model directory loads its config.json, and _name_or_path becomes the hub id', async () => {
  const modelDir = join(dir, 'my-model')
  mkdirSync(modelDir)
  writeFileSync(join(modelDir, 'config.json'), JSON.stringify({ ...PHI3_MINI, _name_or_path: 'microsoft/Phi-3-mini-4k-instruct' }))
  const arch = await loadModel(modelDir)
  assert.equal(arch.params, 3_821_079_552)
  assert.equal(arch.hfId, 'microsoft/Phi-3-mini-4k-instruct')
})

test('a directory without config.json says so', async () => {
  const empty = join(dir, 'empty')
  mkdirSync(empty)
  await rejectsExit(loadModel(empty), /has no config\.json/)
})

test('a path that does not exist says so instead of asking the hub', async () => {
  await rejectsExit(loadModel('./nope/config.json', { fetch: noNetwork }), /model path "\.\/nope\/config\.json" does not exist/)
})

test('malformed JSON names the file and the parse error', async () => {
  const p = write('bad.json', '{"model_type": "phi3",')
  await rejectsExit(loadModel(p), new RegExp(`${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON: .+`))
})

test('an unsupported model_type lists the supported ones', async () => {
  const p = write('gpt2.json', JSON.stringify({ model_type: 'gpt2', n_embd: 768 }))
  await rejectsExit(loadModel(p), /unsupported model_type "gpt2": Headroom supports llama, mistral, phi3, qwen2, gemma2/)
})

test('missing required fields are all named', async () => {
  const p = write('partial.json', JSON.stringify({ model_type: 'llama', hidden_size: 4096, num_attention_heads: 32 }))
  await rejectsExit(loadModel(p), /missing intermediate_size, num_hidden_layers, vocab_size/)
})

test('invalid field values are named with their values', () => {
  const c = { model_type: 'llama', hidden_size: 4096, intermediate_size: '11008', num_hidden_layers: 0, num_attention_heads: 32, vocab_size: 32000 }
  assert.throws(() => archFromHfConfig(c, 'x'), /intermediate_size="11008", num_hidden_layers=0/)
  assert.throws(() => archFromHfConfig({ ...c, intermediate_size: 1, num_hidden_layers: 1, num_key_value_heads: 5 }, 'x'), /not a multiple of num_key_value_heads=5/)
  assert.throws(() => archFromHfConfig([], 'x'), /must hold a JSON object, got an array/)
  assert.throws(() => archFromHfConfig({ hidden_size: 1 }, 'x'), /has no model_type/)
})

test('catalog ids and hub ids resolve case-insensitively without the network', async () => {
  for (const ref of ['microsoft/Phi-3-mini-128k-instruct', 'MICROSOFT/phi-3-mini-128k-instruct', 'Phi-3-Mini-128K-Instruct', ' phi-3-mini-128k-instruct ']) {
    const arch = await loadModel(ref, { fetch: noNetwork })
    assert.equal(arch.name, 'phi-3-mini-128k-instruct')
  }
  for (const m of listModels()) {
    assert.equal((await loadModel(m.hfId!, { fetch: noNetwork })).name, m.name)
  }
  assert.equal(findModelSync('meta-llama/Meta-Llama-3.1-8B-Instruct')?.name, 'llama-3.1-8b-instruct')
  assert.equal(findModelSync('no-such-model'), undefined)
})

test('an unknown name suggests the nearest catalog id', async () => {
  await rejectsExit(loadModel('phi3-mini', { fetch: noNetwork }), /^unknown model "phi3-mini": did you mean "phi-3-mini-4k-instruct"\?$/)
  await rejectsExit(loadModel('qwen2.5-7b-instrct', { fetch: noNetwork }), /did you mean "qwen2\.5-7b-instruct"\?/)
  await rejectsExit(loadModel('llama-2-7', { fetch: noNetwork }), /did you mean "llama-2-7b"\?/)
})

test('a hub id outside the catalog is fetched from the hub', async () => {
  const seen: string[] = []
  const fake = (async (url: string) => {
    seen.push(url)
    return new Response(JSON.stringify({ ...PHI3_MINI, num_hidden_layers: 2 }), { status: 200 })
  }) as unknown as typeof fetch
  const arch = await loadModel('someone/tiny-phi3', { fetch: fake, endpoint: 'https://hub.example' })
  assert.deepEqual(seen, ['https://hub.example/someone/tiny-phi3/resolve/main/config.json'])
  assert.equal(arch.hfId, 'someone/tiny-phi3')
  assert.equal(arch.numLayers, 2)
})

test('an unreachable hub says the model is not in the catalog and suggests a local config.json', async () => {
  const offline = (async () => {
    throw new TypeError('fetch failed')
  }) as unknown as typeof fetch
  await rejectsExit(
    loadModel('someone/some-model', { fetch: offline }),
    /model "someone\/some-model" is not in the catalog and the Hugging Face hub can't be reached \(fetch failed\): pass a local config\.json/,
  )
})

test('hub errors: 404 and gated repositories', async () => {
  const status = (code: number) => (async () => new Response('nope', { status: code })) as unknown as typeof fetch
  await rejectsExit(loadModel('microsoft/Phi-3-mini-128k-instuct', { fetch: status(404) }), /has no config\.json \(HTTP 404\): did you mean "phi-3-mini-128k-instruct"\?/)
  await rejectsExit(loadModel('meta-llama/Llama-4-private', { fetch: status(401), token: '' }), /gated or private \(HTTP 401\): set HF_TOKEN/)
})
