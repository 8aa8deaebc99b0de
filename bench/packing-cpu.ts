/**
 * Packed vs padded on the default run, side by side in one bench run: `headroom tune`'s default
 * CPU fine-tune (tiny Phi-3 QLoRA, batch 8, max_length 1024, the bundled data) as it is (each
 * batch right-padded to its longest example) and with TrainingArguments.packing: true (the
 * batch's examples end to end in one row, python/headroom_runtime/_data.py collate_packed).
 * Same seed, same data order, so both train on the same examples at every step.
 *
 * Reports the run summary's tokensPerSecond (non-padding tokens over the steady steps: after step
 * 1 and outside the steps whose memory the trainer measures, python/headroom_runtime/_throughput.py),
 * and both loss curves. Runs alternate (padded,
 * packed, padded, packed…) so a busy machine slows both alike. Targets (issue 13): packed >= 1.3x
 * padded tokens/s; the loss curves within noise (same examples, so the per-step difference is
 * float rounding: reported as the largest relative per-step difference).
 *
 *   nice -n 10 node --import tsx bench/packing-cpu.ts [--steps 40] [--rounds 2] [--threads 1]
 *
 * Writes bench/results/packing-cpu.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { StartEvent, StepEvent } from '../src/runtime/events.ts'
import { startRun } from '../src/runtime/supervisor.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const arg = (name: string, fallback: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback)
const STEPS = arg('--steps', 40)
const ROUNDS = arg('--rounds', 2)
const THREADS = arg('--threads', 1) // one OpenMP thread: see bench/tune-throughput.ts on spin-waiting under load
const TARGET = 1.3

function config(packing: boolean): string {
  const text = readFileSync(join(ROOT, 'python', 'headroom_runtime', 'default_config.yaml'), 'utf8')
  if (!/^ {2}TrainingArguments:\n/m.test(text)) throw new Error('default_config.yaml has no TrainingArguments section')
  const path = join(mkdtempSync(join(tmpdir(), 'headroom-packing-')), 'training_config.yaml')
  writeFileSync(path, text.replace(/^ {2}TrainingArguments:\n/m, `  TrainingArguments:\n    packing: ${packing}\n`))
  return path
}

type Side = { tokensPerSecond: number; losses: number[]; tokens: number[]; seqLens: number[]; computeDtype?: string }
async function run(packing: boolean): Promise<Side> {
  const out = join(mkdtempSync(join(tmpdir(), 'headroom-packing-run-')), 'run')
  const env = { OMP_NUM_THREADS: String(THREADS), MKL_NUM_THREADS: String(THREADS) }
  const r = await startRun({ config: config(packing), maxSteps: STEPS, output: out, device: 'cpu', env }, { forwardSignals: false })
  const steps: StepEvent[] = []
  let start: StartEvent | undefined
  r.on('event', (e) => {
    if (e.type === 'step') steps.push(e)
    if (e.type === 'start') start = e
  })
  const summary = await r.done
  if (summary.state !== 'succeeded' || steps.length < 2) throw new Error(`headroom tune (packing ${packing}) ended ${summary.state} after ${steps.length} steps`)
  const ran = (start?.config?.TrainingArguments as Record<string, unknown> | undefined)?.packing === true
  if (ran !== packing) throw new Error(`the trainer ran with packing=${ran}, not ${packing}`)
  if (typeof summary.tokensPerSecond !== 'number') throw new Error(`headroom tune (packing ${packing}) reported no tokensPerSecond in its summary`)
  return {
    tokensPerSecond: summary.tokensPerSecond,
    losses: steps.map((s) => s.loss), tokens: steps.map((s) => s.tokens), seqLens: steps.map((s) => s.seqLen ?? 0), computeDtype: start?.computeDtype,
  }
}

const rounds: { padded: Side; packed: Side }[] = []
for (let i = 0; i < ROUNDS; i++) {
  const padded = await run(false)
  const packed = await run(true)
  rounds.push({ padded, packed })
  process.stdout.write(`round ${i + 1}: padded ${padded.tokensPerSecond.toFixed(0)} tok/s, packed ${packed.tokensPerSecond.toFixed(0)} tok/s, ratio ${(packed.tokensPerSecond / padded.tokensPerSecond).toFixed(3)}\n`)
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const padded = mean(rounds.map((r) => r.padded.tokensPerSecond))
const packed = mean(rounds.map((r) => r.packed.tokensPerSecond))
const first = rounds[0]
const sameTokens = first.padded.tokens.every((t, i) => t === first.packed.tokens[i])
const relDiffs = first.padded.losses.map((l, i) => Math.abs(first.packed.losses[i] - l) / Math.abs(l))
// Padded rows hold batch x longest tokens; the fraction of them that is padding is what packing stops computing.
const paddedFraction = 1 - first.padded.tokens.reduce((a, b) => a + b, 0) / first.padded.seqLens.reduce((a, s) => a + s * 8, 0)
const ratio = packed / padded
process.stdout.write(`\npadded ${padded.toFixed(0)} tok/s, packed ${packed.toFixed(0)} tok/s: ${ratio.toFixed(3)}x (target >= ${TARGET}: ${ratio >= TARGET ? 'met' : 'NOT met'})\n`)
process.stdout.write(`same non-padding tokens every step: ${sameTokens}; padding in the padded batches: ${(100 * paddedFraction).toFixed(1)}%\n`)
process.stdout.write(`loss curves: largest per-step relative difference ${(100 * Math.max(...relDiffs)).toFixed(3)}%, last loss padded ${first.padded.losses.at(-1)!.toFixed(4)}, packed ${first.packed.losses.at(-1)!.toFixed(4)}\n`)
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
const outPath = join(ROOT, 'bench', 'results', 'packing-cpu.json')
writeFileSync(outPath, `${JSON.stringify({
  date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model }, steps: STEPS, threads: THREADS,
  config: 'headroom default (tiny-phi3 QLoRA nf4, all-linear r=8, batch 8, max_length 1024, bundled data), CPU', computeDtype: first.padded.computeDtype,
  paddedTokensPerSecond: padded, packedTokensPerSecond: packed, ratio, target: TARGET, sameTokensEveryStep: sameTokens, paddingFraction: paddedFraction,
  lossMaxRelDiff: Math.max(...relDiffs), rounds: rounds.map((r) => ({ padded: r.padded.tokensPerSecond, packed: r.packed.tokensPerSecond })),
  lossCurve: { padded: first.padded.losses, packed: first.packed.losses },
}, null, 2)}\n`)
process.stdout.write(`wrote ${outPath}\n`)
