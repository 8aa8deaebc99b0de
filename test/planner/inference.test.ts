/**
 * `plan --phase inference`: the terms of generate's peak (weights, KV cache, one block of the
 * prefill, last-position logits, overhead), the fit searches, and the same plan through the CLI
 * (a subprocess) and POST /v1/plans (a real server).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  generateLogitsBytes,
  inferenceMaxSeqLen,
  inferenceTerms,
  kvCacheBytes,
  kvCacheBytesPerToken,
  maxConcurrentSequences,
  prepareInference,
} from '../../src/planner/inference.ts'
import { planMemory } from '../../src/planner/plan.ts'
import { CUBLAS_WORKSPACE_BYTES, CUDA_CONTEXT_BYTES, EXPANDABLE_SLACK_FRACTION, usableMemoryBytes } from '../../src/planner/overhead.ts'
import { resolvePlanInput } from '../../src/request/index.ts'
import { startServer, type RunningServer } from '../../src/server/server.ts'
import type { PlanInput } from '../../src/planner/types.ts'
import { a100_80, phi3Mini, seedInput, t4 } from './fixtures.ts'
import { runCli, runCliAll } from './run-cli.ts'

/** Phi-3-mini served as is (no adapter) in bf16, one sequence of 4,096 tokens, on an A100-80GB. */
const served: PlanInput = { ...seedInput, phase: 'inference', method: 'full', quant: 'none', doubleQuant: false, dtype: 'bf16', batch: 1, seq: 4096 }

test('Phi-3-mini bf16, batch 1 x 4,096 tokens: every term by hand', () => {
  const t = inferenceTerms(served)
  // Weights: 3,821,079,552 params x 2 B (bf16) = 7,642,159,104 B.
  assert.equal(t.breakdown.weights, 7_642_159_104)
  // KV cache: 2 (K and V) x 32 layers x 32 kv heads x 96 head_dim x 2 B = 393,216 B per token (KAITO's
  // model_catalog_summary.csv lists the same bytesPerToken_fp16 for Phi-3-mini); x 4,096 tokens = 1,610,612,736 B.
  assert.equal(kvCacheBytesPerToken(phi3Mini, 'bf16'), 393_216)
  assert.equal(t.kvCacheBytes, 1_610_612_736)
  // One block of the prefill (sdpa): stream 4 x 3,072 + max(attention 9,216 + 6,144 + 3,072 + 3,072 = 21,504,
  // fused MLP 4 x 8,192 = 32,768) = 45,056 elements x 2 B = 90,112 B per token; x 4,096 = 369,098,752 B.
  assert.equal(t.prefillBytes, 369_098_752)
  assert.equal(t.breakdown.activations, 1_610_612_736 + 369_098_752)
  // Logits of the last position: 32,064 x (2 B model output + 2 fp32 copies x 4 B) = 320,640 B.
  assert.equal(t.breakdown.logits, 320_640)
  // Overhead: CUDA context + 5% (expandable segments) of the prefill's churn + the cuBLAS workspace.
  assert.equal(t.breakdown.overhead, Math.round(CUDA_CONTEXT_BYTES + EXPANDABLE_SLACK_FRACTION * 369_098_752 + CUBLAS_WORKSPACE_BYTES))
  // Nothing trains.
  assert.equal(t.breakdown.adapters, 0)
  assert.equal(t.breakdown.gradients, 0)
  assert.equal(t.breakdown.optimizer, 0)
  const b = t.breakdown
  assert.equal(t.peakBytes, b.weights + b.adapters + b.gradients + b.optimizer + b.activations + b.logits + b.overhead)
  assert.equal(t.peakAllocatedBytes, t.peakBytes - Math.round(CUDA_CONTEXT_BYTES + EXPANDABLE_SLACK_FRACTION * 369_098_752))
  // The plan is the same numbers with phase inference.
  const plan = planMemory(served)
  assert.equal(plan.phase, 'inference')
  assert.deepEqual(plan.breakdown, t.breakdown)
  assert.equal(plan.peakBytes, t.peakBytes)
})

test('the KV cache grows linearly in batch and sequence; generate keeps logits of the last position only', () => {
  assert.equal(kvCacheBytes(phi3Mini, 'bf16', 8, 4096), 8 * kvCacheBytes(phi3Mini, 'bf16', 1, 4096))
  assert.equal(kvCacheBytes(phi3Mini, 'fp32', 1, 8192), 4 * kvCacheBytes(phi3Mini, 'bf16', 1, 4096))
  // Independent of the sequence length: [b, 1, V], unlike training's b x s x V.
  assert.equal(inferenceTerms({ ...served, seq: 512 }).breakdown.logits, inferenceTerms({ ...served, seq: 16384 }).breakdown.logits)
  assert.equal(generateLogitsBytes(32064, 'bf16', 4), 4 * 320_640)
})

test('a sliding window caps nothing at the prefill peak: transformers keeps the prompt storage alive', () => {
  const windowed = { ...phi3Mini, name: 'windowed', slidingWindow: 2047 }
  assert.equal(kvCacheBytes(windowed, 'bf16', 1, 4096), kvCacheBytes(phi3Mini, 'bf16', 1, 4096))
})

test('eager attention: heads x s^2 scores and fp32 softmax while attention runs, and the 4D mask throughout', () => {
  const at = (attention: PlanInput['attention'], seq: number) => inferenceTerms({ ...served, attention, seq }).prefillBytes
  // At 4,096 tokens attention outgrows the MLP: 21,504 x 2 B per token + 32 heads x (2 B scores + 4 B softmax) per
  // (token x seq), against the MLP's 32,768 x 2 B per token; plus the bf16 mask, 2 B per (token x seq).
  assert.equal(at('eager', 4096) - at('sdpa', 4096), 4096 * 21_504 * 2 + 4096 * 4096 * 32 * 6 - 4096 * 32_768 * 2 + 4096 * 4096 * 2)
  // At 16 tokens the MLP still sets the block's peak: eager costs only its mask.
  assert.equal(at('eager', 16) - at('sdpa', 16), 16 * 16 * 2)
})

test('quantized weights are smaller, and smaller than training their k-bit casts', () => {
  const bf16 = inferenceTerms({ ...served, method: 'lora' })
  const int8 = inferenceTerms({ ...served, method: 'qlora', quant: 'int8' })
  const nf4 = inferenceTerms({ ...served, method: 'qlora', quant: 'nf4', doubleQuant: true })
  assert.ok(int8.breakdown.weights < bf16.breakdown.weights, 'int8 < bf16')
  assert.ok(nf4.breakdown.weights < int8.breakdown.weights, 'nf4 < int8')
  // Training casts the unquantized modules (embeddings, lm_head, norms) to fp32; serving keeps them in bf16.
  const train = planMemory({ ...served, phase: 'train', method: 'qlora', quant: 'nf4', doubleQuant: true })
  assert.ok(nf4.breakdown.weights < train.breakdown.weights, 'no k-bit training casts in inference')
  // The KV cache does not depend on how weights are stored.
  assert.equal(nf4.kvCacheBytes, bf16.kvCacheBytes)
  // An adapter is served unmerged in fp32: 4 B per LoRA parameter.
  assert.equal(bf16.breakdown.adapters, bf16.trainableParams * 4)
  assert.ok(bf16.trainableParams > 0)
})

test('a served LoRA adapter holds 3 outputs of its Linear; a 4-bit matmul its dequantized weight beside its output', () => {
  const prefill = (over: Partial<PlanInput>) => inferenceTerms({ ...served, ...over }).prefillBytes
  const base = prefill({})
  // Adapted gate_up_proj: base output + lora_B output + the scaled copy = 3 x 2I = 6I, above the plain MLP's 4I.
  assert.equal(prefill({ method: 'lora', targets: ['gate_up_proj'] }) - base, 4096 * (6 - 4) * 8192 * 2)
  // Adapted o_proj: attention rises to 9,216 + 6,144 + 3,072 + 3 x 3,072 = 27,648 per token, still below the MLP's 32,768.
  assert.equal(prefill({ method: 'lora', targets: ['o_proj'] }), base)
  // NF4 at 16 tokens: the dequantized gate_up (3,072 x 16,384 x 2 B) with its 16 x 16,384 x 2 B output outweighs the MLP.
  const nf4 = inferenceTerms({ ...served, seq: 16, method: 'qlora', quant: 'nf4', doubleQuant: true, targets: ['o_proj'] })
  assert.equal(nf4.prefillBytes, 16 * 4 * 3072 * 2 + 3072 * 16384 * 2 + 16 * 16384 * 2)
  // At 4,096 tokens the MLP's 4I wins again over the one-off dequantized copy.
  assert.equal(prefill({ method: 'qlora', quant: 'nf4', doubleQuant: true, targets: ['o_proj'] }), base)
})

test('on CPU there is no CUDA context, allocator slack or workspace', () => {
  const cpu = inferenceTerms({ ...served, device: 'cpu', gpu: null })
  assert.equal(cpu.breakdown.overhead, 0)
  assert.equal(cpu.peakAllocatedBytes, cpu.peakBytes)
  const cuda = inferenceTerms(served)
  assert.equal(cuda.peakBytes - cpu.peakBytes, cuda.breakdown.overhead)
  assert.ok(cuda.breakdown.overhead > 0)
})

test('maxSeqLen fits, the next token does not, and it never grows with the batch', () => {
  let previous = Infinity
  for (const batch of [1, 2, 4, 8, 16, 64]) {
    const input = { ...served, batch }
    const plan = planMemory(input)
    const n = plan.maxSeqLen
    assert.ok(n !== null && n > 0, `batch ${batch} fits something`)
    assert.equal(n, inferenceMaxSeqLen(input))
    assert.ok(n <= previous, `batch ${batch}: ${n} <= ${previous}`)
    previous = n
    const budget = usableMemoryBytes(a100_80)
    const prepared = prepareInference(input)
    assert.ok(prepared.at(batch, n).peakBytes <= budget)
    if (n < phi3Mini.maxPositionEmbeddings) assert.ok(prepared.at(batch, n + 1).peakBytes > budget, `batch ${batch}: ${n + 1} does not fit`)
  }
  // Batch 1 reaches the model's limit on an A100-80GB; batch 64 cannot.
  assert.equal(planMemory(served).maxSeqLen, phi3Mini.maxPositionEmbeddings)
  assert.ok(previous < phi3Mini.maxPositionEmbeddings)
  // Without a GPU there is nothing to fit against.
  assert.equal(planMemory({ ...served, gpu: null, device: 'cpu' }).maxSeqLen, null)
})

test('maxConcurrentSequences: that many fit, one more does not, fewer at longer sequences, fewer on a smaller GPU', () => {
  const budget = usableMemoryBytes(a100_80)
  const n = maxConcurrentSequences(served)!
  assert.ok(n > 1)
  assert.ok(prepareInference(served).at(n, served.seq).peakBytes <= budget)
  assert.ok(prepareInference(served).at(n + 1, served.seq).peakBytes > budget)
  assert.ok(maxConcurrentSequences({ ...served, seq: 16384 })! < n)
  assert.ok(maxConcurrentSequences({ ...served, gpu: t4, dtype: 'fp16' })! < n)
  // QLoRA-style nf4 weights leave more room for cache.
  assert.ok(maxConcurrentSequences({ ...served, method: 'qlora', quant: 'nf4', doubleQuant: true })! > n)
  // One sequence of 131,072 tokens needs 51.5 GB of KV cache alone (393,216 B x 131,072): nothing fits a 16 GB T4.
  assert.equal(maxConcurrentSequences({ ...served, gpu: t4, dtype: 'fp16', seq: 131072 }), 0)
  assert.equal(maxConcurrentSequences({ ...served, gpu: null, device: 'cpu' }), null)
  assert.equal(maxConcurrentSequences(served, 1e6), 0)
})

test('a plan that does not fit says so and names the serving fixes', () => {
  const plan = planMemory({ ...served, method: 'lora', batch: 64, seq: 32768 })
  assert.equal(plan.fits, false)
  const w = plan.warnings.find((x) => x.code === 'does_not_fit')
  assert.ok(w, JSON.stringify(plan.warnings))
  assert.match(w.message, /method: "qlora"/)
  assert.match(w.message, /fewer concurrent sequences \(a lower batch\)/)
  const long = planMemory({ ...served, seq: 200_000 })
  assert.ok(long.warnings.some((x) => x.code === 'seq_beyond_model'), 'a sequence beyond max_position_embeddings warns in inference too')
})

let server: RunningServer
before(async () => {
  server = await startServer({ db: ':memory:', port: 0, processMetrics: false })
})
after(async () => {
  await server.close()
})

test('plan --phase inference --json equals POST /v1/plans {phase: "inference"}, byte for byte', { timeout: 120_000 }, async () => {
  const requests = [
    { phase: 'inference' },
    { phase: 'inference', method: 'lora', dtype: 'bf16', batch: 8, seq: 4096 },
    { phase: 'inference', model: 'llama-3.1-8b', quant: 'int8', gpu: 'A10', seq: 8192 },
    { phase: 'inference', device: 'cpu', method: 'full', dtype: 'fp32', seq: 512 },
  ] as const
  const args = (r: Record<string, unknown>) => Object.entries(r).flatMap(([k, v]) => [`--${k}`, String(v)])
  const cli = await runCliAll(requests.map((r) => ['plan', '--json', ...args(r)]))
  for (const [i, req] of requests.entries()) {
    assert.equal(cli[i].status, 0, cli[i].stderr)
    const res = await fetch(`${server.url}/v1/plans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req) })
    const text = await res.text()
    assert.equal(res.status, 200, text)
    assert.equal(JSON.stringify(JSON.parse(cli[i].stdout)), text, JSON.stringify(req))
    const plan = JSON.parse(text) as { phase: string; breakdown: { gradients: number; optimizer: number } }
    assert.equal(plan.phase, 'inference')
    assert.equal(plan.breakdown.gradients + plan.breakdown.optimizer, 0)
  }
})

test('plan --phase inference prints the KV cache and the most concurrent sequences', { timeout: 60_000 }, async () => {
  const r = await runCli(['plan', '--phase', 'inference', '--method', 'full', '--dtype', 'bf16', '--seq', '4096'])
  assert.equal(r.status, 0, r.stderr)
  const input = await resolvePlanInput({ phase: 'inference', method: 'full', dtype: 'bf16', seq: 4096 })
  const n = maxConcurrentSequences(input)!
  assert.ok(n > 0)
  assert.match(r.stdout, new RegExp(`most concurrent sequences of 4,096 tokens: ${n.toLocaleString('en-US')} `))
  assert.match(r.stdout, /KV cache 1\.5 GiB/)
  assert.match(r.stdout, /inference \(generate\), bf16 weights/)
  const rec = await runCli(['plan', '--phase', 'inference', '--recommend'])
  assert.equal(rec.status, 0, rec.stderr)
  assert.match(rec.stdout, /--recommend plans training; drop --phase inference/)
  const bad = await runCli(['plan', '--phase', 'serve'])
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /inference/)
  assert.doesNotMatch(bad.stderr, /\n\s+at /)
})

test('a quantized model served alone: --phase inference --method full --quant nf4 plans 4-bit weights; training it stays refused', async () => {
  const quantized = await resolvePlanInput({ phase: 'inference', method: 'full', quant: 'nf4' })
  const bf16 = await resolvePlanInput({ phase: 'inference', method: 'full', dtype: 'bf16' })
  const [q, b] = [planMemory(quantized), planMemory(bf16)]
  assert.equal(q.breakdown.adapters, 0)
  assert.ok(q.breakdown.weights < b.breakdown.weights / 2, `nf4 ${q.breakdown.weights} vs bf16 ${b.breakdown.weights}`)
  await assert.rejects(resolvePlanInput({ phase: 'train', method: 'full', quant: 'nf4' }), /method full cannot train nf4/)
})
