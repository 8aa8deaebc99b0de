/**
 * Planner accuracy on CPU: for LoRA, QLoRA and full fine-tuning of the tiny Phi-3 and tiny
 * Llama over several sequence lengths and batch sizes, run TWO real training steps through the
 * supervisor (python -m headroom_runtime.train counts live tensor bytes with torch MemTracker on
 * steps 1 and 2: step 2 is the first with AdamW's state alive through backward, the steady state
 * the planner predicts; docs/events.md) and compare the trainer's measured peak with the
 * planner's prediction for the same configuration on device `cpu`. Target: within 20%.
 *
 *   node --import tsx bench/cpu-memory-accuracy.ts [--quick]
 *
 * Prints a table and writes bench/results/cpu-memory-accuracy.json (with both per-component
 * breakdowns: the planner's, and MemTracker's categories at the peak).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRun } from '../src/runtime/supervisor.ts'
import { readRunRecord } from '../src/runtime/run-record.ts'
import { formatBytes } from '../src/units.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const quick = process.argv.includes('--quick')
const METHODS = ['lora', 'qlora', 'full'] as const
const MODELS = ['tiny-phi3', 'tiny-llama']
const SEQS = quick ? [128] : [64, 256]
const BATCHES = quick ? [2] : [1, 4]
const TARGET = 0.2

/** Rows of real text long enough that every example truncates at max_length (fixed shape). */
function longTextDataset(dir: string): string {
  const rows = readFileSync(join(ROOT, 'examples', 'data', 'stdlib-docs.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { messages: { content: string }[] }).messages.map((m) => m.content).join('\n'))
  const out: string[] = []
  for (let i = 0; out.length < 16; i += 40) out.push(JSON.stringify({ text: rows.slice(i, i + 40).join('\n\n') }))
  const path = join(dir, 'long-text.jsonl')
  writeFileSync(path, `${out.join('\n')}\n`)
  return path
}

function configFor(method: (typeof METHODS)[number], seq: number, batch: number): string {
  return [
    'training_config:',
    '  ModelConfig:',
    '    torch_dtype: "float32"',
    '  QuantizationConfig:',
    ...(method === 'qlora'
      ? ['    load_in_4bit: true', '    bnb_4bit_quant_type: "nf4"', '    bnb_4bit_compute_dtype: "float32"', '    bnb_4bit_use_double_quant: true']
      : ['    load_in_4bit: false']),
    '  LoraConfig:',
    '    r: 8',
    '    lora_alpha: 16',
    '  TrainingArguments:',
    `    per_device_train_batch_size: ${batch}`,
    `    max_length: ${seq}`,
    '    gradient_checkpointing: false',
    '    save_strategy: "no"',
    '  DatasetConfig:',
    '    shuffle_dataset: false',
    '',
  ].join('\n')
}

type Row = {
  model: string
  method: string
  seq: number
  batch: number
  observedSeq: number | null
  predictedBytes: number | null
  measuredBytes: number | null
  ratio: number | null
  within: boolean
  plannerBreakdown: Record<string, number> | null
  measuredBreakdown: Record<string, number> | null
  state: string
  error?: string
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'headroom-bench-'))
  const data = longTextDataset(scratch)
  const rows: Row[] = []
  for (const model of MODELS) {
    for (const method of METHODS) {
      for (const seq of SEQS) {
        for (const batch of BATCHES) {
          const config = join(scratch, `${model}-${method}-${seq}-${batch}.yaml`)
          writeFileSync(config, configFor(method, seq, batch))
          const output = join(scratch, `${model}-${method}-${seq}-${batch}`)
          const run = await startRun(
            { config, model: join(ROOT, '.headroom', 'assets', model), data, output, maxSteps: 2, device: 'cpu', method },
            { forwardSignals: false, onProgress: (l) => process.stderr.write(`${l}\n`) },
          )
          const logs: string[] = []
          run.on('log', (l) => logs.push(l))
          const summary = await run.done
          const record = readRunRecord(output) as Record<string, unknown> | null
          const prediction = run.record.prediction
          const predicted = summary.predictedPeakBytes
          const measured = summary.measuredPeakBytes
          const ratio = predicted && measured ? measured / predicted : null
          const row: Row = {
            model,
            method,
            seq,
            batch,
            observedSeq: run.record.progress.maxSeqLen,
            predictedBytes: predicted,
            measuredBytes: measured,
            ratio,
            within: ratio !== null && Math.abs(ratio - 1) <= TARGET,
            plannerBreakdown: prediction?.atObservedSeq?.breakdown ?? prediction?.breakdown ?? null,
            // The trainer's own record (MemTracker's categories at the peak) sits under `trainer`.
            measuredBreakdown: ((record?.trainer as Record<string, unknown> | undefined)?.peakBreakdownBytes as Record<string, number> | undefined) ?? null,
            state: summary.state,
            ...(summary.state !== 'succeeded' ? { error: run.lastError?.message ?? logs.slice(-5).join(' | ') } : {}),
            ...(run.record.predictionError ? { error: run.record.predictionError } : {}),
          }
          rows.push(row)
          process.stdout.write(`${line(row)}\n`)
        }
      }
    }
  }
  const within = rows.filter((r) => r.within).length
  process.stdout.write(`\n${within}/${rows.length} configurations within ${TARGET * 100}% (measured/predicted in [${1 - TARGET}, ${1 + TARGET}])\n`)
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
  const out = join(ROOT, 'bench', 'results', 'cpu-memory-accuracy.json')
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem() }, target: TARGET, within, total: rows.length, rows }, null, 2)}\n`,
  )
  process.stdout.write(`wrote ${out}\n`)
}

const HEADER = `${'model'.padEnd(11)} ${'method'.padEnd(6)} ${'seq'.padStart(5)} ${'batch'.padStart(5)} ${'predicted'.padStart(11)} ${'measured'.padStart(11)} ${'meas/pred'.padStart(9)}  ok`
function line(r: Row): string {
  const fmt = (b: number | null) => (b === null ? 'n/a' : formatBytes(b))
  return `${r.model.padEnd(11)} ${r.method.padEnd(6)} ${String(r.seq).padStart(5)} ${String(r.batch).padStart(5)} ${fmt(r.predictedBytes).padStart(11)} ${fmt(r.measuredBytes).padStart(11)} ${(r.ratio === null ? 'n/a' : r.ratio.toFixed(3)).padStart(9)}  ${r.within ? 'yes' : r.state === 'succeeded' ? 'NO' : r.state}`
}

process.stdout.write(`${HEADER}\n`)
await main()
