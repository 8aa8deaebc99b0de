/**
 * Throughput of `headroom tune` against a plain transformers + peft loop (bench/plain_peft.py)
 * at the same configuration: the default QLoRA fine-tune of the tiny Phi-3 on CPU (nf4 with
 * double quantization, r=8, alpha=8 on all linear layers, batch 8, max_length 1024, AdamW at
 * 5e-3, cosine schedule with 5 warm-up steps, no gradient checkpointing). Target: ratio >= 0.95.
 *
 * Like with like: both sides compute in the same dtype. float32 always (HEADROOM_CPU_BF16=0 makes
 * the trainer fall back from the default config's bfloat16); bfloat16 too when this CPU has
 * native bf16 (the trainer's own probe, headroom_runtime._device). Each dtype gets its own ratio;
 * the trainer's `start` event confirms the dtype it really computed in.
 *
 *   node --import tsx bench/tune-throughput.ts [--steps 60] [--rounds 2] [--threads 1] [--packing]
 *
 * --packing: both sides pack each batch padding-free (headroom: TrainingArguments.packing in a
 * copy of the default config; plain: plain_peft.py --packing). Target: ratio >= 1.0. Writes
 * bench/results/tune-throughput-packing.json.
 *
 * Both sides count the non-padding tokens of steps 2..N. The plain loop times them with one
 * clock from the end of step 1 to the end of step N. Headroom's figure is its run summary's
 * tokensPerSecond (through the same startRun the CLI uses): each steady step's own seconds,
 * from batch collation to the optimizer step, leaving out the CPU steps whose memory the trainer
 * measures (step 2 and every 100th: MemTracker hooks every op and runs several times slower;
 * the plain loop measures nothing). Between-step work (the event line, the RSS sample) is
 * outside headroom's window and inside the plain loop's, which has none of it. Runs alternate (headroom, plain, headroom, plain, …) so a busy
 * machine slows both alike. Writes bench/results/tune-throughput.json.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { StartEvent, StepEvent } from '../src/runtime/events.ts'
import { startRun } from '../src/runtime/supervisor.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const arg = (name: string, fallback: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback)
const STEPS = arg('--steps', 60)
const ROUNDS = arg('--rounds', 2)
// Both sides get the same torch/OpenMP thread count. On a shared 2-core machine two OpenMP
// threads spin-wait on each other whenever another process holds a core: one measured step
// went from 0.45 s (1 thread) to 10 s (2 threads) under load, which swamps any comparison.
const THREADS = arg('--threads', 1)
const THREAD_ENV = { OMP_NUM_THREADS: String(THREADS), MKL_NUM_THREADS: String(THREADS) }
const MODEL = join(ROOT, '.headroom', 'assets', 'tiny-phi3')
const DATA = join(ROOT, 'examples', 'data', 'stdlib-docs.jsonl')
const PYTHON = join(ROOT, '.venv', 'bin', 'python')
type Dtype = 'float32' | 'bfloat16'
const PACKING = process.argv.includes('--packing')
const TARGET = PACKING ? 1.0 : 0.95

/** The default config with TrainingArguments.packing: true (the trainer's own key). */
function packedConfig(): string {
  const text = readFileSync(join(ROOT, 'python', 'headroom_runtime', 'default_config.yaml'), 'utf8')
  if (!/^ {2}TrainingArguments:\n/m.test(text)) throw new Error('default_config.yaml has no TrainingArguments section to add packing to')
  const path = join(mkdtempSync(join(tmpdir(), 'headroom-tp-config-')), 'training_config.yaml')
  writeFileSync(path, text.replace(/^ {2}TrainingArguments:\n/m, '  TrainingArguments:\n    packing: true\n'))
  return path
}
const CONFIG = PACKING ? packedConfig() : undefined

/** The trainer's own capability probe, so the bench decides as the trainer does. */
function cpuHasNativeBf16(): boolean {
  const out = execFileSync(PYTHON, ['-c', 'from headroom_runtime._device import cpu_has_native_bf16; print(int(cpu_has_native_bf16()))'], {
    env: { ...process.env, PYTHONPATH: join(ROOT, 'python') },
    encoding: 'utf8',
  })
  return out.trim() === '1'
}

async function headroomTokensPerSecond(dtype: Dtype): Promise<number> {
  // The default config asks for bfloat16; the override picks the path to measure.
  const env = { ...THREAD_ENV, HEADROOM_CPU_BF16: dtype === 'bfloat16' ? '1' : '0' }
  const run = await startRun({ model: MODEL, data: DATA, config: CONFIG, maxSteps: STEPS, output: join(mkdtempSync(join(tmpdir(), 'headroom-tp-')), 'run'), device: 'cpu', env }, { forwardSignals: false })
  const steps: StepEvent[] = []
  let start: StartEvent | undefined
  run.on('event', (e) => {
    if (e.type === 'step') steps.push(e)
    if (e.type === 'start') start = e
  })
  const summary = await run.done
  if (summary.state !== 'succeeded' || steps.length < 2) throw new Error(`headroom tune ended ${summary.state} after ${steps.length} steps`)
  const packing = (start?.config?.TrainingArguments as Record<string, unknown> | undefined)?.packing === true
  if (packing !== PACKING) throw new Error(`headroom tune ran with packing=${packing}, not ${PACKING}`)
  if (start?.computeDtype !== dtype) throw new Error(`headroom tune computed in ${start?.computeDtype}, not ${dtype}: the comparison would not be like with like`)
  // The summary's figure: steady steps only (after step 1, outside the steps whose memory the
  // trainer measures, which the plain loop does not do), each step's own seconds.
  if (typeof summary.tokensPerSecond !== 'number') throw new Error('headroom tune reported no tokensPerSecond in its summary')
  return summary.tokensPerSecond
}

function plainTokensPerSecond(dtype: Dtype): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [join(ROOT, 'bench', 'plain_peft.py'), '--model', MODEL, '--data', DATA, '--steps', String(STEPS), '--batch', '8', '--max-length', '1024', '--method', 'qlora', '--dtype', dtype, ...(PACKING ? ['--packing'] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...THREAD_ENV },
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`plain_peft.py exited ${code}: ${err.slice(-1000)}`))
      resolve((JSON.parse(out.trim().split('\n').pop()!) as { tokensPerSecond: number }).tokensPerSecond)
    })
  })
}

const dtypes: Dtype[] = cpuHasNativeBf16() ? ['float32', 'bfloat16'] : ['float32']
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const results: Record<string, { rounds: { headroom: number; plain: number }[]; headroomTokensPerSecond: number; plainTokensPerSecond: number; ratio: number }> = {}
for (const dtype of dtypes) {
  const rounds: { headroom: number; plain: number }[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const headroom = await headroomTokensPerSecond(dtype)
    const plain = await plainTokensPerSecond(dtype)
    rounds.push({ headroom, plain })
    process.stdout.write(`${dtype} round ${i + 1}: headroom tune ${headroom.toFixed(0)} tok/s, plain transformers+peft ${plain.toFixed(0)} tok/s, ratio ${(headroom / plain).toFixed(3)}\n`)
  }
  const headroom = mean(rounds.map((r) => r.headroom))
  const plain = mean(rounds.map((r) => r.plain))
  results[dtype] = { rounds, headroomTokensPerSecond: headroom, plainTokensPerSecond: plain, ratio: headroom / plain }
}
process.stdout.write(`\n${'compute dtype'.padEnd(14)} ${'headroom tok/s'.padStart(15)} ${'plain tok/s'.padStart(12)} ${'ratio'.padStart(7)}\n`)
for (const [dtype, r] of Object.entries(results)) {
  process.stdout.write(`${dtype.padEnd(14)} ${r.headroomTokensPerSecond.toFixed(0).padStart(15)} ${r.plainTokensPerSecond.toFixed(0).padStart(12)} ${r.ratio.toFixed(3).padStart(7)}  (target >= ${TARGET}: ${r.ratio >= TARGET ? 'met' : 'NOT met'})\n`)
}
if (dtypes.length === 1) process.stdout.write('bfloat16: not measured, this CPU has no native bf16 (avx512_bf16/amx_bf16)\n')
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
const out = join(ROOT, 'bench', 'results', PACKING ? 'tune-throughput-packing.json' : 'tune-throughput.json')
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, nativeBf16: dtypes.includes('bfloat16') }, steps: STEPS, threads: THREADS, config: `default QLoRA, tiny-phi3, all-linear, batch 8, max_length 1024, CPU; both sides at the same compute dtype${PACKING ? '; both sides packed padding-free' : ''}`, packing: PACKING, byComputeDtype: results, target: TARGET }, null, 2)}\n`)
process.stdout.write(`wrote ${out}\n`)
