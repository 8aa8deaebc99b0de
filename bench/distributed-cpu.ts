/**
 * Distributed training on CPU (torchrun, gloo) against the planner's per-rank prediction, through the
 * real `headroom tune --nproc N` on the tiny Llama (LoRA r 8 on every Linear, float32, batch 2 per
 * rank at max_length 128, 6 steps). For 1, 2 and 4 ranks under DDP and FSDP: each rank's measured
 * peak (MemTracker's live tensor bytes, steps 1 and 2) over the planner's per-rank peak for the
 * longest batch trained (gpus = ranks, the same figure `tune` prints). Then DDP with 2 ranks and
 * half the per-device batch against 1 rank with the whole batch: the loss at each step (the same
 * global batches, so the same updates up to each rank's token weighting), which must agree within 2%.
 * Writes bench/results/distributed-cpu.json.
 *
 *   nice -n 10 node --import tsx bench/distributed-cpu.ts        # ~6 min on 2 shared cores
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const MODEL = join(root, '.headroom', 'assets', 'tiny-llama')
const STEPS = 6
const work = mkdtempSync(join(tmpdir(), 'headroom-dist-bench-'))

function config(batch: number): string {
  const path = join(work, `config-${batch}.yaml`)
  writeFileSync(path, [
    'training_config:',
    '  ModelConfig: {torch_dtype: float32, local_files_only: true}',
    '  LoraConfig: {r: 8, lora_alpha: 16, lora_dropout: 0.0, target_modules: all-linear}',
    `  TrainingArguments: {per_device_train_batch_size: ${batch}, max_length: 128, learning_rate: 0.003, max_steps: ${STEPS}, save_strategy: "no", gradient_checkpointing: false, optim: adamw_torch, warmup_steps: 0}`,
    '  DatasetConfig: {shuffle_dataset: true, train_test_split: 1}',
    '',
  ].join('\n'))
  return path
}

type Run = { ranks: number; parallelism: string; batch: number; summary: Record<string, any>; losses: number[]; seconds: number }

function tune(ranks: number, parallelism: 'ddp' | 'fsdp' | 'none', batch: number): Run {
  const flags = ranks > 1 ? ['--nproc', String(ranks), '--parallelism', parallelism] : []
  const began = Date.now()
  // tune writes progress to stderr; --log-every 1 gives every step's loss line. 2>&1 keeps both.
  const out = execFileSync('bash', ['-c', `"$0" "$@" 2>&1`, join(root, 'bin', 'headroom'), 'tune', '--json', '--log-every', '1', '--model', MODEL, '--config', config(batch), '--output', join(work, `${ranks}-${parallelism}-${batch}`), ...flags], {
    cwd: root, encoding: 'utf8', maxBuffer: 1 << 24,
  })
  const lines = out.trim().split('\n')
  const summary = JSON.parse(lines[lines.length - 1])
  const losses = lines.map((l) => /^step (\d+)\/\d+ · loss ([\d.]+)/.exec(l)).filter((m) => m !== null).map((m) => Number(m![2]))
  return { ranks, parallelism, batch, summary, losses, seconds: (Date.now() - began) / 1000 }
}

const runs: Run[] = [tune(1, 'none', 2)]
for (const ranks of [2, 4]) for (const p of ['ddp', 'fsdp'] as const) runs.push(tune(ranks, p, 2))
const whole = tune(1, 'none', 4)

const rows = runs.map((r) => {
  const predicted = r.summary.predictedPeakBytes as number
  const perRank = (r.summary.measuredPeakBytesPerRank as number[]).map((b) => ({ measured: b, ratio: b / predicted }))
  return { ranks: r.ranks, parallelism: r.parallelism, perDeviceBatch: r.batch, predictedPerRankBytes: predicted, perRank, worstRatio: Math.max(...perRank.map((p) => Math.abs(p.ratio - 1))) + 1, lastLoss: r.summary.lastLoss, seconds: r.seconds }
})
const half = runs.find((r) => r.ranks === 2 && r.parallelism === 'ddp')!
const lossRows = whole.losses.map((l, i) => ({ step: i + 1, oneRankBatch4: l, twoRanksBatch2: half.losses[i], relDiff: Math.abs(half.losses[i] - l) / l }))

const pad = (s: string | number, n: number) => String(s).padEnd(n)
console.log(`${pad('ranks', 6)}${pad('par', 6)}${pad('pred B/rank', 13)}measured per rank (ratio)`)
for (const r of rows) console.log(`${pad(r.ranks, 6)}${pad(r.parallelism, 6)}${pad(r.predictedPerRankBytes, 13)}${r.perRank.map((p) => `${p.measured} (${p.ratio.toFixed(3)})`).join(', ')}`)
console.log('\nstep  1 rank x4   2 ranks x2  rel diff')
for (const l of lossRows) console.log(`${pad(l.step, 6)}${pad(l.oneRankBatch4.toFixed(3), 12)}${pad(l.twoRanksBatch2.toFixed(3), 12)}${(l.relDiff * 100).toFixed(3)}%`)

const result = {
  machine: `${cpus().length} cores (${cpus()[0]?.model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, shared`,
  model: 'tiny-llama', steps: STEPS, maxLength: 128,
  rows,
  loss: { maxRelDiff: Math.max(...lossRows.map((l) => l.relDiff)), steps: lossRows },
  within20Percent: rows.every((r) => r.perRank.every((p) => p.ratio > 0.8 && p.ratio < 1.2)),
}
mkdirSync(join(root, 'bench', 'results'), { recursive: true })
writeFileSync(join(root, 'bench', 'results', 'distributed-cpu.json'), `${JSON.stringify(result, null, 1)}\n`)
console.log(`\nevery rank within 20%: ${result.within20Percent}; largest loss difference ${(result.loss.maxRelDiff * 100).toFixed(3)}%`)
