/**
 * Real bitsandbytes 4-bit (and 16-bit LoRA) training on CPU at Phi-3-mini-128k's real widths
 * (hidden 3,072, intermediate 8,192, 32 heads, vocab 32,064), random weights, 1-2 decoder
 * blocks instead of 32 (activation terms are per block), sequences 2k-8k, against the planner
 * for device cpu. Runs bench/memory_step.py (the trainer's loading path: from_pretrained +
 * BitsAndBytesConfig nf4/dq/bf16, prepare_model_for_kbit_training, LoRA on every Linear, fused
 * AdamW with its state alive) under MemTracker (live tensor bytes), then plans each row.
 *
 *   node --import tsx bench/qlora-cpu-measure.ts            # measures (~20 min on 2 cores), writes bench/results/qlora-cpu-measure.json
 *   node --import tsx bench/qlora-cpu-measure.ts --from raw.jsonl   # re-plans recorded measurements only
 *
 * Per-block terms come from differences: 2 blocks minus 1 block at the same shape is one block
 * (its saved tensors, plus its weights); 4,096 minus 2,048 tokens is the per-token slope.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseStepLines, planStep, type MeasuredStep } from './memory-step.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const MIB = 2 ** 20

type Measured = MeasuredStep

// Each group is one process: one model load, several steps.
const GROUPS: { layers: number; configs: Omit<Measured, 'batch' | 'layers' | 'state' | 'seconds'>[] }[] = [
  { layers: 1, configs: [
    { method: 'qlora', seq: 2048, gc: false, attention: 'sdpa' }, { method: 'qlora', seq: 2048, gc: true, attention: 'sdpa' },
    { method: 'qlora', seq: 4096, gc: false, attention: 'sdpa' }, { method: 'qlora', seq: 4096, gc: true, attention: 'sdpa' },
    { method: 'qlora', seq: 2048, gc: false, attention: 'eager' }, { method: 'qlora', seq: 8192, gc: false, attention: 'sdpa' },
  ] },
  { layers: 2, configs: [{ method: 'qlora', seq: 2048, gc: false, attention: 'sdpa' }, { method: 'qlora', seq: 2048, gc: true, attention: 'sdpa' }] },
  { layers: 1, configs: [{ method: 'lora', seq: 2048, gc: false, attention: 'sdpa' }, { method: 'lora', seq: 2048, gc: true, attention: 'sdpa' }] },
]

function measure(): Measured[] {
  const out: Measured[] = []
  for (const g of GROUPS) {
    const stdout = execFileSync('nice', ['-n', '10', join(root, '.venv', 'bin', 'python'), join(root, 'bench', 'memory_step.py'), '--device', 'cpu', '--layers', String(g.layers), '--configs', JSON.stringify(g.configs)], {
      cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24,
    })
    out.push(...parseStepLines<Measured>(stdout))
  }
  return out
}

const fromIndex = process.argv.indexOf('--from')
const measured = fromIndex > 0 ? parseStepLines<Measured>(readFileSync(process.argv[fromIndex + 1], 'utf8')) : measure()
const rows = measured.map((m) => {
  const t = planStep(m)
  const ok = m.state === 'ok' && m.peakAllocatedBytes !== undefined
  return {
    ...m,
    predictedPeakAllocatedBytes: t.peakAllocatedBytes,
    predictedMoment: t.moment,
    predictedBreakdown: t.breakdown,
    ratio: ok ? m.peakAllocatedBytes! / t.peakAllocatedBytes : null,
  }
})

const pad = (s: string | number, n: number) => String(s).padEnd(n)
const mib = (b: number | undefined) => (b === undefined ? '-' : (b / MIB).toFixed(0))
console.log(`${pad('method', 7)}${pad('blocks', 7)}${pad('attn', 6)}${pad('gc', 4)}${pad('seq', 6)}${pad('meas MiB', 10)}${pad('pred MiB', 10)}${pad('ratio', 7)}${pad('activ.', 8)}${pad('temp', 8)}moment`)
for (const r of rows) {
  console.log(`${pad(r.method, 7)}${pad(r.layers, 7)}${pad(r.attention, 6)}${pad(r.gc ? 'on' : 'off', 4)}${pad(r.seq, 6)}${pad(mib(r.peakAllocatedBytes), 10)}${pad(mib(r.predictedPeakAllocatedBytes), 10)}${pad(r.ratio === null ? r.state : r.ratio.toFixed(3), 7)}${pad(mib(r.breakdown?.Activation), 8)}${pad(mib(r.breakdown?.Temp), 8)}${r.predictedMoment}`)
}

// Differences that isolate one term each (same method, attention, checkpointing).
const find = (p: Partial<Measured>) => rows.find((r) => Object.entries(p).every(([k, v]) => (r as Record<string, unknown>)[k] === v) && r.state === 'ok')
const derived: Record<string, number> = {}
for (const gc of [false, true]) {
  const a = find({ method: 'qlora', layers: 1, seq: 2048, gc, attention: 'sdpa' })
  const b = find({ method: 'qlora', layers: 2, seq: 2048, gc, attention: 'sdpa' })
  if (a && b) {
    derived[`qlora one block, gc ${gc ? 'on' : 'off'}, 2,048 tokens: measured bytes per token`] = (b.peakAllocatedBytes! - a.peakAllocatedBytes!) / 2048
    derived[`qlora one block, gc ${gc ? 'on' : 'off'}, 2,048 tokens: planned bytes per token`] = (b.predictedPeakAllocatedBytes - a.predictedPeakAllocatedBytes) / 2048
  }
  const s = find({ method: 'qlora', layers: 1, seq: 4096, gc, attention: 'sdpa' })
  if (a && s) {
    derived[`qlora 1 block, gc ${gc ? 'on' : 'off'}: measured slope bytes per token (2,048 -> 4,096)`] = (s.peakAllocatedBytes! - a.peakAllocatedBytes!) / 2048
    derived[`qlora 1 block, gc ${gc ? 'on' : 'off'}: planned slope bytes per token (2,048 -> 4,096)`] = (s.predictedPeakAllocatedBytes - a.predictedPeakAllocatedBytes) / 2048
  }
}
for (const [k, v] of Object.entries(derived)) console.log(`${pad(k, 80)}${Math.round(v).toLocaleString('en-US')}`)

const ratios = rows.flatMap((r) => (r.ratio === null ? [] : [r.ratio]))
console.log(`\n${ratios.length}/${rows.length} measured; measured/predicted ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}`)
mkdirSync(join(root, 'bench', 'results'), { recursive: true })
writeFileSync(
  join(root, 'bench', 'results', 'qlora-cpu-measure.json'),
  `${JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, memoryBytes: totalmem(), node: process.version }, date: new Date().toISOString(), rows, derived }, null, 2)}\n`,
)
