/** The engine decision (pure) for both machines, and the vLLM command line it would run. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decideEngine, vllmArgs, type EngineFacts } from '../../src/serve/engine.ts'
import { parseWorkerLine } from '../../src/runtime/serve-events.ts'

const gpuBox: EngineFacts = { requested: 'auto', vllm: { ok: true, detail: 'vllm 0.11.0' }, gpus: ['NVIDIA A100-SXM4-80GB'], torchCuda: true, device: 'auto' }
const cpuBox: EngineFacts = { requested: 'auto', vllm: { ok: false, detail: "No module named 'vllm'" }, gpus: [], torchCuda: false, device: 'auto' }

test('auto picks vLLM only where it imports and a GPU is present; transformers otherwise', () => {
  assert.equal((decideEngine(gpuBox) as { engine: string }).engine, 'vllm')
  assert.equal((decideEngine(cpuBox) as { engine: string }).engine, 'transformers')
  assert.equal((decideEngine({ ...gpuBox, device: 'cpu' }) as { engine: string }).engine, 'transformers')
  assert.equal((decideEngine({ ...gpuBox, vllm: cpuBox.vllm }) as { engine: string }).engine, 'transformers')
  assert.equal((decideEngine({ ...gpuBox, requested: 'transformers' }) as { engine: string }).engine, 'transformers')
})

test('--engine vllm where it cannot run is an error naming each missing condition', () => {
  const d = decideEngine({ ...cpuBox, requested: 'vllm' })
  assert.ok('error' in d)
  assert.match(d.error, /vllm does not import in the venv \(No module named 'vllm'\)/)
  assert.match(d.error, /no NVIDIA GPU is present/)
  const cpuTorch = decideEngine({ ...gpuBox, requested: 'vllm', torchCuda: false })
  assert.ok('error' in cpuTorch && /torch in the venv is a CPU build/.test(cpuTorch.error))
  assert.deepEqual(decideEngine({ ...gpuBox, requested: 'vllm' }), { engine: 'vllm', why: '--engine vllm (vllm 0.11.0, NVIDIA A100-SXM4-80GB)' })
})

test("vLLM's arguments serve each adapter as its own model id with --enable-lora --lora-modules", () => {
  assert.deepEqual(vllmArgs({ model: '/models/phi3', adapters: [{ name: 'docs', dir: '/mnt/adapter/docs' }, { name: 'sql', dir: '/mnt/adapter/sql' }], host: '127.0.0.1', port: 5000, maxConcurrency: 32, token: 'T0k3n-abc' }), [
    '--model', '/models/phi3', '--host', '127.0.0.1', '--port', '5000', '--max-num-seqs', '32',
    '--enable-lora', '--lora-modules', 'docs=/mnt/adapter/docs', 'sql=/mnt/adapter/sql', '--api-key', 'T0k3n-abc',
  ])
  assert.ok(!vllmArgs({ model: 'm', adapters: [], host: 'h', port: 1, maxConcurrency: 1 }).includes('--enable-lora'))
})

test('worker lines: protocol events parse, a JSON line that breaks the protocol is flagged, the rest are logs', () => {
  const done = parseWorkerLine('{"id":"r1","type":"done","text":"hi","finishReason":"length","usage":{"promptTokens":3,"completionTokens":1},"ttftSeconds":0.1,"seconds":0.2}')
  assert.equal(done.kind, 'event')
  const bad = parseWorkerLine('{"id":"r1","type":"done","text":"hi","finishReason":"eos"}')
  assert.equal(bad.kind, 'invalid')
  assert.match((bad as { error: string }).error, /finishReason/)
  assert.equal(parseWorkerLine('Loading weights: 100%').kind, 'log')
  assert.equal(parseWorkerLine('{not json').kind, 'log')
})
