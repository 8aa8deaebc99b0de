// Shared by the end-to-end tests: run bin/headroom as a user would, and know when the real
// Python runtime is there to run against.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(ROOT, 'bin', 'headroom')
export const TINY_PHI3 = join(ROOT, '.headroom', 'assets', 'tiny-phi3')
export const TINY_LLAMA = join(ROOT, '.headroom', 'assets', 'tiny-llama')

/** Why the end-to-end tests cannot run here, or undefined when they can. */
export function e2eSkipReason(): string | undefined {
  if (!existsSync(join(ROOT, '.venv', 'bin', 'python'))) return 'no .venv: run bash scripts/setup.sh first'
  if (!existsSync(join(ROOT, 'python', 'headroom_runtime', 'train.py'))) return 'python/headroom_runtime/train.py is not there yet'
  return undefined
}

export type CliResult = { code: number | null; stdout: string; stderr: string }

/** Runs `bin/headroom args…`; `onStderr` sees stderr as it arrives (to signal mid-run). */
export function headroom(args: string[], opts: { cwd?: string; onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(BIN, args, { cwd: opts.cwd ?? tmp(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => {
      stderr += d
      opts.onStderr?.(stderr, child)
    })
    child.on('close', (code) => done({ code, stdout, stderr }))
  })
}

export function tmp(prefix = 'headroom-e2e-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Writes a file into a fresh temporary directory and returns its path. */
export function writeTmp(name: string, content: string): string {
  const path = join(tmp(), name)
  writeFileSync(path, content)
  return path
}

/** The last stdout line parsed as JSON (the --json summary). */
export function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>
}

/** A training_config document for one method, small enough for CPU tests. */
export function methodConfig(method: 'lora' | 'qlora' | 'full', extra: Record<string, unknown> = {}): string {
  const quant = method === 'qlora'
    ? '  QuantizationConfig:\n    load_in_4bit: true\n    bnb_4bit_quant_type: "nf4"\n    bnb_4bit_compute_dtype: "float32"\n    bnb_4bit_use_double_quant: true\n'
    : '  QuantizationConfig:\n    load_in_4bit: false\n'
  const training = { per_device_train_batch_size: 4, max_length: 128, learning_rate: 0.005, save_strategy: 'no', gradient_checkpointing: false, ...extra }
  return [
    'training_config:',
    '  ModelConfig:',
    '    torch_dtype: "float32"',
    quant.trimEnd(),
    '  LoraConfig:',
    '    r: 8',
    '    lora_alpha: 16',
    '  TrainingArguments:',
    ...Object.entries(training).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`),
    '',
  ].join('\n')
}

/** The `tune --json` summary's keys, sorted: DESIGN.md §2.1b's names. */
export const SUMMARY_KEYS = ['adapterDir', 'device', 'firstLoss', 'lastLoss', 'measuredPeakBytes', 'measuredPeakBytesPerRank', 'predictedMaxLengthPeakBytes', 'predictedPeakBytes', 'ranks', 'state', 'steps', 'tokensPerSecond']
