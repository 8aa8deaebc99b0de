/**
 * Inference memory on CPU: the planner's `--phase inference` prediction against the measured
 * peak of one real transformers `generate` call on the embedded tiny models, at two batch
 * sizes x two lengths. Target: within 15% for the default (tiny Phi-3, sdpa); the eager,
 * tiny Llama and QLoRA-served rows check the s^2 term, the unfused MLP, and 4-bit weights with
 * an unmerged adapter.
 *
 *   node --import tsx bench/inference-memory.ts
 *
 * bench/inference-memory.py measures (live tensor bytes with torch MemTracker, the trainer's
 * CPU method: weights + KV cache + every transient of generate); the prediction is
 * planMemory({ ..., phase: 'inference', device: 'cpu' }) for the same model, dtype, batch and
 * total tokens (prompt + the 4 generated). Prints a table and writes
 * bench/results/inference-memory.json.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { planMemory } from '../src/planner/plan.ts'
import { inferenceTerms } from '../src/planner/inference.ts'
import { resolvePlanInput } from '../src/request/index.ts'
import { formatBytes } from '../src/units.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const TARGET = 0.15
const BATCHES = [1, 8]
// The tiny models' max_position_embeddings is 512.
const SEQS = [128, 448]
const NEW_TOKENS = 4
// serving: 'base' is the model alone (method full, fp32); 'qlora' is NF4 + double quant weights with an unmerged
// LoRA r 8 adapter on every Linear (what `headroom serve` runs for a QLoRA-tuned adapter).
const GROUPS = [
  { model: 'tiny-phi3', attention: 'sdpa' as const, serving: 'base' as const, target: true },
  { model: 'tiny-phi3', attention: 'eager' as const, serving: 'base' as const, target: false },
  { model: 'tiny-llama', attention: 'sdpa' as const, serving: 'base' as const, target: false },
  { model: 'tiny-phi3', attention: 'sdpa' as const, serving: 'qlora' as const, target: false },
]

type Measured = { batch: number; seq: number; promptTokens: number; newTokens: number; peakBytes: number; weightsBytes: number; breakdown: Record<string, number> }
type Row = {
  model: string
  serving: string
  attention: string
  batch: number
  seq: number
  predictedBytes: number
  measuredBytes: number
  ratio: number
  within: boolean
  target: boolean
  predicted: { weights: number; adapters: number; kvCache: number; prefill: number; logits: number }
  measuredBreakdown: Record<string, number>
}

async function main(): Promise<void> {
  const rows: Row[] = []
  process.stdout.write(`${HEADER}\n`)
  for (const g of GROUPS) {
    const dir = join(ROOT, '.headroom', 'assets', g.model)
    const qlora = g.serving === 'qlora'
    const spec = {
      dtype: 'fp32',
      attention: g.attention,
      newTokens: NEW_TOKENS,
      ...(qlora ? { quant: 'nf4', lora: { r: 8 } } : {}),
      cases: BATCHES.flatMap((batch) => SEQS.map((seq) => ({ batch, seq }))),
    }
    const stdout = execFileSync('nice', ['-n', '10', join(ROOT, '.venv', 'bin', 'python'), join(ROOT, 'bench', 'inference-memory.py'), dir, JSON.stringify(spec)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 1 << 24,
    })
    const measured = stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Measured)
    for (const m of measured) {
      const serving = qlora ? { method: 'qlora', quant: 'nf4', doubleQuant: true, targets: 'all-linear', rank: 8 } : { method: 'full' }
      const input = await resolvePlanInput({ model: join(dir, 'config.json'), phase: 'inference', device: 'cpu', dtype: 'fp32', attention: g.attention, batch: m.batch, seq: m.seq, ...serving })
      const plan = planMemory(input)
      const t = inferenceTerms(input)
      const ratio = m.peakBytes / plan.peakBytes
      const row: Row = {
        model: g.model,
        serving: g.serving,
        attention: g.attention,
        batch: m.batch,
        seq: m.seq,
        predictedBytes: plan.peakBytes,
        measuredBytes: m.peakBytes,
        ratio,
        within: Math.abs(ratio - 1) <= TARGET,
        target: g.target,
        predicted: { weights: t.breakdown.weights, adapters: t.breakdown.adapters, kvCache: t.kvCacheBytes, prefill: t.prefillBytes, logits: t.breakdown.logits },
        measuredBreakdown: m.breakdown,
      }
      rows.push(row)
      process.stdout.write(`${line(row)}\n`)
    }
  }
  const targeted = rows.filter((r) => r.target)
  if (rows.length !== GROUPS.length * BATCHES.length * SEQS.length) throw new Error('a configuration was not measured')
  const within = targeted.filter((r) => r.within).length
  const all = rows.filter((r) => r.within).length
  process.stdout.write(`\n${within}/${targeted.length} tiny-phi3 sdpa configurations within ${TARGET * 100}% (the target); ${all}/${rows.length} rows in all\n`)
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
  const out = join(ROOT, 'bench', 'results', 'inference-memory.json')
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem() }, target: TARGET, newTokens: NEW_TOKENS, within, total: targeted.length, rows }, null, 2)}\n`,
  )
  process.stdout.write(`wrote ${out}\n`)
  if (within < targeted.length) process.exitCode = 1
}

const HEADER = `${'model'.padEnd(10)} ${'serve'.padEnd(5)} ${'attn'.padEnd(5)} ${'batch'.padStart(5)} ${'seq'.padStart(4)} ${'predicted'.padStart(10)} ${'measured'.padStart(10)} ${'meas/pred'.padStart(9)}  ok`
function line(r: Row): string {
  return `${r.model.padEnd(10)} ${r.serving.padEnd(5)} ${r.attention.padEnd(5)} ${String(r.batch).padStart(5)} ${String(r.seq).padStart(4)} ${formatBytes(r.predictedBytes).padStart(10)} ${formatBytes(r.measuredBytes).padStart(10)} ${r.ratio.toFixed(3).padStart(9)}  ${r.within ? 'yes' : 'NO'}`
}

await main()
