/** Shared by the sweep tests: the trainer's default config, the codec's decode, bin/headroom with an environment. */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { decode as codecDecode, type DecodeContext, type Sections } from '../../src/config/codec.ts'
import { readSections } from '../../src/runtime/prediction.ts'

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'headroom')
export const ROOT = join(import.meta.dirname, '..', '..')

/** The trainer's default training_config (python/headroom_runtime/default_config.yaml). */
export function readSectionsForTest(): Sections {
  return readSections(join(ROOT, 'python', 'headroom_runtime', 'default_config.yaml'))
}

export function decode(sections: Sections, ctx: DecodeContext) {
  return codecDecode(sections, ctx)
}

export type CliResult = { status: number | null; stdout: string; stderr: string }

/** `headroom <args>` as a subprocess, with extra environment. */
export function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 600_000, env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? ROOT })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}
