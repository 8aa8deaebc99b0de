/** `bin/headroom` as a subprocess, run asynchronously so a test can spawn a batch at once. */
import { spawn } from 'node:child_process'
import { join } from 'node:path'

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'headroom')

export type CliResult = { status: number | null; stdout: string; stderr: string }

export type CliOptions = { env?: Record<string, string>; timeoutMs?: number; cwd?: string }

/** Runs `headroom <args>` and collects its output (a number: the timeout in ms). */
export function runCli(args: string[], opts: number | CliOptions = {}): Promise<CliResult> {
  const { env, timeoutMs = 120_000, cwd } = typeof opts === 'number' ? { timeoutMs: opts } : opts
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, ...(env ? { env: { ...process.env, ...env } } : {}), ...(cwd ? { cwd } : {}) })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

/** Runs every argument list, at most `concurrency` at a time (the test boxes have 2 shared cores), in order. */
export async function runCliAll(argLists: string[][], concurrency = 4): Promise<CliResult[]> {
  const results: CliResult[] = new Array(argLists.length)
  let next = 0
  const worker = async () => {
    while (next < argLists.length) {
      const i = next++
      results[i] = await runCli(argLists[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, argLists.length) }, worker))
  return results
}
