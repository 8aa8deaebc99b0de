/**
 * Throughput of `headroom tune` against a plain transformers + peft loop (bench/plain_peft.py)
 * at the same configuration: the default QLoRA fine-tune of the tiny Phi-3 on CPU (nf4 with
 * double quantization, float32 compute, r=8, alpha=8, batch 8, max_length 512, AdamW at 5e-3,
 * cosine schedule with 5 warm-up steps, no gradient checkpointing). Target: ratio >= 0.95.
 *
 *   node --import tsx bench/tune-throughput.ts [--steps 60] [--rounds 2] [--threads 1]
 *
 * Both sides count the non-padding tokens of steps 2..N over the wall-clock time from the end of
 * step 1 to the end of step N. For headroom that window is read from the step events' `t`
 * (so it includes event emission, memory telemetry and the supervisor), through the same
 * startRun the CLI uses. Runs alternate (headroom, plain, headroom, plain, …) so a busy
 * machine slows both alike. Writes bench/results/tune-throughput.json.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { StepEvent } from '../src/runtime/events.ts'
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

async function headroomTokensPerSecond(): Promise<number> {
  const run = await startRun({ model: MODEL, data: DATA, maxSteps: STEPS, output: join(mkdtempSync(join(tmpdir(), 'headroom-tp-')), 'run'), device: 'cpu', env: THREAD_ENV }, { forwardSignals: false })
  const steps: StepEvent[] = []
  run.on('event', (e) => e.type === 'step' && steps.push(e))
  const summary = await run.done
  if (summary.state !== 'succeeded' || steps.length < 2) throw new Error(`headroom tune ended ${summary.state} after ${steps.length} steps`)
  const tokens = steps.slice(1).reduce((n, s) => n + s.tokens, 0)
  return tokens / ((steps[steps.length - 1].t - steps[0].t) / 1000)
}

function plainTokensPerSecond(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(ROOT, '.venv', 'bin', 'python'), [join(ROOT, 'bench', 'plain_peft.py'), '--model', MODEL, '--data', DATA, '--steps', String(STEPS), '--batch', '8', '--max-length', '512', '--method', 'qlora'], {
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

const rounds: { headroom: number; plain: number }[] = []
for (let i = 0; i < ROUNDS; i++) {
  const headroom = await headroomTokensPerSecond()
  const plain = await plainTokensPerSecond()
  rounds.push({ headroom, plain })
  process.stdout.write(`round ${i + 1}: headroom tune ${headroom.toFixed(0)} tok/s, plain transformers+peft ${plain.toFixed(0)} tok/s, ratio ${(headroom / plain).toFixed(3)}\n`)
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const headroom = mean(rounds.map((r) => r.headroom))
const plain = mean(rounds.map((r) => r.plain))
const ratio = headroom / plain
process.stdout.write(`\n${'side'.padEnd(28)} ${'tokens/s'.padStart(10)}\n${'headroom tune'.padEnd(28)} ${headroom.toFixed(0).padStart(10)}\n${'plain transformers + peft'.padEnd(28)} ${plain.toFixed(0).padStart(10)}\nratio ${ratio.toFixed(3)} (target >= 0.95): ${ratio >= 0.95 ? 'met' : 'NOT met'}\n`)
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
const out = join(ROOT, 'bench', 'results', 'tune-throughput.json')
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model }, steps: STEPS, threads: THREADS, config: 'default QLoRA, tiny-phi3, batch 8, max_length 512, CPU float32', rounds, headroomTokensPerSecond: headroom, plainTokensPerSecond: plain, ratio, target: 0.95 }, null, 2)}\n`)
process.stdout.write(`wrote ${out}\n`)
