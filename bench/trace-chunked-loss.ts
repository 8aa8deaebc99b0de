/**
 * The chunked-loss lever at real scale without a GPU: python/headroom_runtime/trace.py runs two
 * training steps of Phi-3-mini-128k (3.8B, vocabulary 32,064) on fake tensors with the trainer's
 * full loss and with its chunked loss (`--loss chunked`, _loss.py), LoRA all-linear r=8,
 * gradient checkpointing, sdpa, bf16, batch 1, at 8k, 16k and 32k tokens, and records the exact
 * peaks of live tensor bytes by category. Beside each trace: the planner's peak for the same
 * input on device `cpu` (like for like: no CUDA context or slack). The input carries
 * `loss: 'chunked'|'full'` (src/planner/fields.ts); a planner without the chunked-loss term
 * plans both the same (plannerModelsLoss: false). Writes bench/results/trace-chunked-loss.json
 * after each sequence length, replacing the rows of the lengths it ran and keeping the others
 * (a case takes minutes: lengths can be run one at a time).
 * About 1-2 minutes per case on 2 cores; run under nice.
 *
 *   nice -n 10 node --import tsx bench/trace-chunked-loss.ts [--seq 8192,16384,32768]
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findModelSync } from '../src/catalog/index.ts'
import type { ModelArch } from '../src/catalog/types.ts'
import { memoryTerms } from '../src/planner/peak.ts'
import type { PlanInput } from '../src/planner/types.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const python = join(root, '.venv', 'bin', 'python')
const MODEL = 'phi-3-mini-128k-instruct'
const seqArg = process.argv.includes('--seq') ? process.argv[process.argv.indexOf('--seq') + 1] : '8192,16384,32768'
const seqs = seqArg.split(',').map(Number)

function hfConfig(arch: ModelArch): Record<string, unknown> {
  return {
    model_type: arch.modelType, hidden_size: arch.hiddenSize, intermediate_size: arch.intermediateSize,
    num_hidden_layers: arch.numLayers, num_attention_heads: arch.numAttentionHeads, num_key_value_heads: arch.numKeyValueHeads,
    head_dim: arch.headDim, vocab_size: arch.vocabSize, max_position_embeddings: arch.maxPositionEmbeddings,
    tie_word_embeddings: arch.tieWordEmbeddings, attention_dropout: 0, resid_pdrop: 0, embd_pdrop: 0, rope_scaling: null, pad_token_id: 0,
  }
}

if (!existsSync(python)) {
  console.log(`skipped: ${python} not found (set up the Python environment first)`)
  process.exit(0)
}
const arch = findModelSync(MODEL)!
const dir = mkdtempSync(join(tmpdir(), 'headroom-trace-loss-'))
writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig(arch)))

type Traced = { peakAllocatedBytes: number; breakdown: Record<string, number>; seconds: number; chunkTokens: number | null; params: number }
/** One trace.py run; the two losses of a length run side by side (each is one thread for minutes). */
function trace(seq: number, loss: 'full' | 'chunked'): Promise<Traced | null> {
  const args = ['-m', 'headroom_runtime.trace', '--model', join(dir, 'config.json'), '--method', 'lora', '--dtype', 'bfloat16',
    '--attention', 'sdpa', '--seq', String(seq), '--batch', '1', '--targets', 'all-linear', '--rank', '8', '--grad-checkpointing', '--loss', loss]
  return new Promise((resolve) => {
    const child = spawn(python, args, { cwd: join(root, 'python'), env: { ...process.env, OMP_NUM_THREADS: '1' } })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? ''
      if (code !== 0 || !line.startsWith('{')) {
        console.log(`seq ${seq} ${loss}: trace failed (${code}): ${err.trim().split('\n').pop()}`)
        return resolve(null)
      }
      resolve(JSON.parse(line) as Traced)
    })
  })
}

function planned(seq: number, loss: 'full' | 'chunked') {
  // `loss` is the plan field L13P adds (src/planner/fields.ts); the assertion lets this run against a planner without it.
  const input = {
    model: arch, phase: 'train', method: 'lora', dtype: 'bf16', quant: 'none', doubleQuant: false, rank: 8, alpha: 8, loraDropout: 0,
    targets: 'all-linear', batch: 1, seq, gradientCheckpointing: true, attention: 'sdpa', optimizer: 'adamw', gpu: null, gpus: 1,
    parallelism: 'ddp', device: 'cpu', expandableSegments: true, loss,
  } as PlanInput
  return memoryTerms(input)
}

const outPath = join(root, 'bench', 'results', 'trace-chunked-loss.json')
const machine = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores)`
type Row = Record<string, unknown> & { seq: number }
const previous: Row[] = existsSync(outPath) ? (JSON.parse(readFileSync(outPath, 'utf8')) as { results: Row[] }).results : []
// --replan: the traces are exact and slow (7-17 min each here); re-plan the stored ones against the current planner.
if (process.argv.includes('--replan')) {
  for (const row of previous) {
    for (const loss of ['full', 'chunked'] as const) {
      const t = row[loss] as { tracedBytes: number; plannedBytes: number; planned: unknown; errorPct: number } | null
      if (!t) continue
      const p = planned(row.seq, loss)
      Object.assign(t, { plannedBytes: p.peakAllocatedBytes, planned: p.breakdown, errorPct: (100 * (p.peakAllocatedBytes - t.tracedBytes)) / t.tracedBytes })
      console.log(`seq ${row.seq} ${loss}: traced ${(t.tracedBytes / 1e9).toFixed(3)} GB, planned ${(p.peakAllocatedBytes / 1e9).toFixed(3)} GB (${t.errorPct >= 0 ? '+' : ''}${t.errorPct.toFixed(1)}%)`)
    }
    const full = row.full as { plannedBytes: number } | null
    const chunked = row.chunked as { plannedBytes: number } | null
    if (full && chunked) row.plannerModelsLoss = full.plannedBytes !== chunked.plannedBytes
  }
  writeFileSync(outPath, `${JSON.stringify({ machine, results: previous }, null, 2)}\n`)
  process.exit(0)
}
for (const seq of seqs) {
  const row: Record<string, unknown> = { model: MODEL, method: 'lora', targets: 'all-linear', rank: 8, dtype: 'bf16', attention: 'sdpa', gradientCheckpointing: true, batch: 1, seq }
  const logitsFp32 = seq * arch.vocabSize * 4 // bytes: one fp32 logits tensor
  const traces = { full: trace(seq, 'full'), chunked: trace(seq, 'chunked') }
  for (const loss of ['full', 'chunked'] as const) {
    const t = await traces[loss]
    const p = planned(seq, loss)
    row[loss] = t && {
      tracedBytes: t.peakAllocatedBytes, traced: t.breakdown, chunkTokens: t.chunkTokens, traceSeconds: t.seconds,
      plannedBytes: p.peakAllocatedBytes, planned: p.breakdown,
      errorPct: (100 * (p.peakAllocatedBytes - t.peakAllocatedBytes)) / t.peakAllocatedBytes,
    }
  }
  const full = row.full as { tracedBytes: number; plannedBytes: number } | null
  const chunked = row.chunked as { tracedBytes: number; plannedBytes: number } | null
  if (full && chunked) {
    row.savedBytes = full.tracedBytes - chunked.tracedBytes
    row.savedInFp32Logits = (full.tracedBytes - chunked.tracedBytes) / logitsFp32
    row.lossShareOfFullPeak = (full.tracedBytes - chunked.tracedBytes) / full.tracedBytes
    row.plannerModelsLoss = full.plannedBytes !== chunked.plannedBytes
    console.log(`${MODEL} lora sdpa checkpointing seq ${seq}: full ${(full.tracedBytes / 1e9).toFixed(3)} GB, chunked ${(chunked.tracedBytes / 1e9).toFixed(3)} GB `
      + `(saves ${((full.tracedBytes - chunked.tracedBytes) / 1e9).toFixed(3)} GB = ${(row.savedInFp32Logits as number).toFixed(2)} fp32 logits); `
      + `planned full ${(full.plannedBytes / 1e9).toFixed(3)} GB, chunked ${(chunked.plannedBytes / 1e9).toFixed(3)} GB`)
  }
  row.date = new Date().toISOString()
  const results = [...previous.filter((r) => r.seq !== seq), row as Row].sort((a, b) => a.seq - b.seq)
  previous.splice(0, previous.length, ...results)
  mkdirSync(join(root, 'bench', 'results'), { recursive: true })
  writeFileSync(outPath, `${JSON.stringify({ machine, results }, null, 2)}\n`)
}
