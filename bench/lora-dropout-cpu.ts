/**
 * LoRA dropout at real widths on CPU, measured against the planner: a Phi-3-mini-128k-shaped model with one decoder
 * block (bench/memory_step.py: random bf16 weights loaded the trainer's way, LoRA r 8 on every Linear, fused AdamW
 * with its state alive, MemTracker's live tensor bytes over one step), LoRA and QLoRA (nf4 + double quant, bf16
 * compute, peft's k-bit preparation), checkpointing off and on, lora_dropout 0 against 0.1 (and 0.05), 2,048 tokens.
 * Prints measured and planned peaks and the per-token difference dropout makes; writes
 * bench/results/lora-dropout-cpu.json.
 *
 *   nice -n 10 node --import tsx bench/lora-dropout-cpu.ts            # measures (~15 min on 2 shared cores)
 *   node --import tsx bench/lora-dropout-cpu.ts --from bench/results/lora-dropout-cpu-raw.jsonl
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseStepLines, planStep, type MeasuredStep } from './memory-step.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const MIB = 2 ** 20
const SEQ = 2048

type Measured = MeasuredStep & { dropout: number }

const CONFIGS = (['lora', 'qlora'] as const).flatMap((method) =>
  [0, 0.1].flatMap((dropout) => [false, true].map((gc) => ({ method, seq: SEQ, gc, attention: 'sdpa', dropout }))),
).concat([{ method: 'qlora', seq: SEQ, gc: false, attention: 'sdpa', dropout: 0.05 }])

function measure(): Measured[] {
  const stdout = execFileSync('nice', ['-n', '10', join(root, '.venv', 'bin', 'python'), join(root, 'bench', 'memory_step.py'), '--device', 'cpu', '--layers', '1', '--configs', JSON.stringify(CONFIGS)], {
    cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24,
  })
  return parseStepLines<Measured>(stdout)
}

const fromIndex = process.argv.indexOf('--from')
const measured = fromIndex > 0 ? parseStepLines<Measured>(readFileSync(process.argv[fromIndex + 1], 'utf8')) : measure()
const rows = measured.map((m) => {
  const t = planStep(m)
  const ok = m.state === 'ok' && m.peakAllocatedBytes !== undefined
  return { ...m, predictedPeakAllocatedBytes: t.peakAllocatedBytes, predictedMoment: t.moment, ratio: ok ? m.peakAllocatedBytes! / t.peakAllocatedBytes : null }
})

const pad = (s: string | number, n: number) => String(s).padEnd(n)
const mib = (b: number | undefined) => (b === undefined ? '-' : (b / MIB).toFixed(0))
console.log(`${pad('method', 7)}${pad('gc', 4)}${pad('dropout', 8)}${pad('meas MiB', 10)}${pad('pred MiB', 10)}${pad('ratio', 7)}${pad('activ.', 8)}moment`)
for (const r of rows) {
  console.log(`${pad(r.method, 7)}${pad(r.gc ? 'on' : 'off', 4)}${pad(r.dropout, 8)}${pad(mib(r.peakAllocatedBytes), 10)}${pad(mib(r.predictedPeakAllocatedBytes), 10)}${pad(r.ratio === null ? r.state : r.ratio.toFixed(3), 7)}${pad(mib(r.breakdown?.Activation), 8)}${r.predictedMoment}`)
}

// What dropout adds, per token, at the peak: same method and checkpointing, dropout 0.1 (or 0.05) minus 0.
const find = (p: Partial<Measured>) => rows.find((r) => Object.entries(p).every(([k, v]) => (r as Record<string, unknown>)[k] === v) && r.state === 'ok')
const derived: Record<string, { measuredBytesPerToken: number; plannedBytesPerToken: number }> = {}
for (const method of ['lora', 'qlora'] as const) {
  for (const gc of [false, true]) {
    for (const dropout of [0.05, 0.1]) {
      const a = find({ method, gc, dropout: 0 })
      const b = find({ method, gc, dropout })
      if (!a || !b) continue
      derived[`${method}, checkpointing ${gc ? 'on' : 'off'}, dropout ${dropout} - 0`] = {
        measuredBytesPerToken: (b.peakAllocatedBytes! - a.peakAllocatedBytes!) / (b.batch * b.seq),
        plannedBytesPerToken: (b.predictedPeakAllocatedBytes - a.predictedPeakAllocatedBytes) / (b.batch * b.seq),
      }
    }
  }
}
console.log(`\n${pad('one block, bytes per token that dropout adds at the peak', 62)}${pad('measured', 10)}planned`)
for (const [k, v] of Object.entries(derived)) console.log(`${pad(k, 62)}${pad(Math.round(v.measuredBytesPerToken).toLocaleString('en-US'), 10)}${Math.round(v.plannedBytesPerToken).toLocaleString('en-US')}`)

const ratios = rows.flatMap((r) => (r.ratio === null ? [] : [r.ratio]))
console.log(`\n${ratios.length}/${rows.length} measured; measured/predicted ${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}`)
mkdirSync(join(root, 'bench', 'results'), { recursive: true })
writeFileSync(
  join(root, 'bench', 'results', 'lora-dropout-cpu.json'),
  `${JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, memoryBytes: totalmem(), node: process.version }, date: new Date().toISOString(), rows, derived }, null, 2)}\n`,
)
