/**
 * Compares the planner with its referee: python/headroom_runtime/trace.py runs one real
 * training step of transformers + peft code on fake tensors (FakeTensorMode + MemTracker) and
 * reports the exact peak of live tensor bytes. The planner is asked the same question on device
 * `cpu` (no CUDA context, slack or workspace), so peakAllocatedBytes is like for like.
 * Needs the Python environment (.venv with torch, transformers, peft); each case takes about a
 * minute for a 3.8B model on 2 cores. Writes bench/results/plan-trace.json.
 *
 *   node --import tsx bench/plan-trace.ts [--quick] [--model <catalog id>]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findModelSync } from '../src/catalog/index.ts'
import type { ModelArch } from '../src/catalog/types.ts'
import { memoryTerms } from '../src/planner/peak.ts'
import type { PlanInput } from '../src/planner/types.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const python = join(root, '.venv', 'bin', 'python')
const quick = process.argv.includes('--quick')

/** The config.json fields transformers needs to build the architecture (weights are never read). */
function hfConfig(arch: ModelArch): Record<string, unknown> {
  return {
    model_type: arch.modelType,
    hidden_size: arch.hiddenSize,
    intermediate_size: arch.intermediateSize,
    num_hidden_layers: arch.numLayers,
    num_attention_heads: arch.numAttentionHeads,
    num_key_value_heads: arch.numKeyValueHeads,
    head_dim: arch.headDim,
    vocab_size: arch.vocabSize,
    max_position_embeddings: arch.maxPositionEmbeddings,
    tie_word_embeddings: arch.tieWordEmbeddings,
    attention_dropout: 0,
    resid_pdrop: 0,
    embd_pdrop: 0,
    rope_scaling: null,
    pad_token_id: 0,
  }
}

type Case = { model: string; method: 'lora' | 'full'; attention: 'sdpa' | 'eager'; seq: number; batch: number; gc: boolean; targets: string }
const QKVO = 'q_proj,k_proj,v_proj,o_proj'
const cases: Case[] = [
  { model: 'phi-3-mini-128k-instruct', method: 'lora', attention: 'eager', seq: 1024, batch: 1, gc: false, targets: QKVO },
  { model: 'phi-3-mini-128k-instruct', method: 'lora', attention: 'sdpa', seq: 2048, batch: 1, gc: false, targets: QKVO },
  { model: 'phi-3-mini-128k-instruct', method: 'lora', attention: 'sdpa', seq: 2048, batch: 1, gc: true, targets: 'all-linear' },
  { model: 'phi-3-mini-128k-instruct', method: 'lora', attention: 'eager', seq: 2048, batch: 1, gc: false, targets: 'all-linear' },
  { model: 'phi-3-mini-128k-instruct', method: 'full', attention: 'sdpa', seq: 512, batch: 1, gc: true, targets: 'all-linear' },
  // GQA (8 kv heads), tied embeddings, a 128k vocabulary
  { model: 'llama-3.2-1b', method: 'lora', attention: 'sdpa', seq: 2048, batch: 2, gc: false, targets: 'q_proj,v_proj' },
  { model: 'llama-3.2-1b', method: 'lora', attention: 'eager', seq: 1024, batch: 1, gc: true, targets: 'all-linear' },
]

if (!existsSync(python)) {
  console.log(`skipped: ${python} not found (set up the Python environment first)`)
  process.exit(0)
}
const dir = mkdtempSync(join(tmpdir(), 'headroom-trace-'))
const results = []
const only = process.argv.includes('--model') ? process.argv[process.argv.indexOf('--model') + 1] : undefined
for (const c of quick ? cases.slice(0, 1) : cases.filter((x) => !only || x.model === only)) {
  const arch = findModelSync(c.model)!
  const configDir = join(dir, c.model)
  mkdirSync(configDir, { recursive: true })
  writeFileSync(join(configDir, 'config.json'), JSON.stringify(hfConfig(arch)))
  const args = ['-m', 'headroom_runtime.trace', '--model', join(configDir, 'config.json'), '--method', c.method, '--dtype', 'bfloat16',
    '--attention', c.attention, '--seq', String(c.seq), '--batch', String(c.batch), '--targets', c.targets, '--rank', '8',
    ...(c.gc ? ['--grad-checkpointing'] : [])]
  const r = spawnSync(python, args, { cwd: join(root, 'python'), encoding: 'utf8', timeout: 600_000 })
  const line = r.stdout.trim().split('\n').pop() ?? ''
  if (r.status !== 0 || !line.startsWith('{')) {
    console.log(`${c.model} ${c.method}: trace failed (${r.status}): ${r.stderr.trim().split('\n').pop()}`)
    continue
  }
  const traced = JSON.parse(line) as { peakAllocatedBytes: number; params: number; breakdown: Record<string, number> }
  const input: PlanInput = {
    model: arch, phase: 'train', method: c.method, dtype: 'bf16', quant: 'none', doubleQuant: false, rank: 8, alpha: 8, loraDropout: 0,
    targets: c.targets === 'all-linear' ? 'all-linear' : c.targets.split(','), batch: c.batch, seq: c.seq,
    gradientCheckpointing: c.gc, attention: c.attention, optimizer: 'adamw', gpu: null, gpus: 1, parallelism: 'ddp',
    device: 'cpu', expandableSegments: true,
  }
  const planned = memoryTerms(input)
  const errorPct = (100 * (planned.peakAllocatedBytes - traced.peakAllocatedBytes)) / traced.peakAllocatedBytes
  // The referee may build a model that differs from the published one (e.g. an untied lm_head); say so and by how much.
  const extraParams = traced.params - (arch.params + (c.method === 'lora' ? planned.trainableParams : 0))
  const extraBytes = extraParams * 2
  const adjustedErrorPct = (100 * (planned.peakAllocatedBytes + extraBytes - traced.peakAllocatedBytes)) / traced.peakAllocatedBytes
  const row = {
    ...c, tracedBytes: traced.peakAllocatedBytes, plannedBytes: planned.peakAllocatedBytes, errorPct,
    tracedExtraParams: extraParams, errorPctIfPlannedWithTheseParams: extraParams !== 0 ? adjustedErrorPct : errorPct,
    traced: traced.breakdown, planned: planned.breakdown,
  }
  results.push(row)
  const note = extraParams !== 0 ? `; the trace built ${extraParams.toLocaleString('en-US')} more parameters (bf16) than the published model, counting them: ${adjustedErrorPct >= 0 ? '+' : ''}${adjustedErrorPct.toFixed(1)}%` : ''
  console.log(`${c.model} ${c.method} ${c.attention} seq ${c.seq} batch ${c.batch}${c.gc ? ' checkpointing' : ''} targets ${c.targets}: traced ${(row.tracedBytes / 1e9).toFixed(2)} GB, planned ${(row.plannedBytes / 1e9).toFixed(2)} GB (${errorPct >= 0 ? '+' : ''}${errorPct.toFixed(1)}%${note})`)
}
mkdirSync(join(root, 'bench', 'results'), { recursive: true })
// A filtered or quick run writes beside the full results instead of replacing them.
const suffix = only ? `-${only}` : quick ? '-quick' : ''
writeFileSync(join(root, 'bench', 'results', `plan-trace${suffix}.json`), `${JSON.stringify({ results }, null, 2)}\n`)
