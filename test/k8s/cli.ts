/** bin/headroom for the cluster tests, run without blocking the event loop (the stand-in API server lives in the test's process). */
import { spawn } from 'node:child_process'
import { join } from 'node:path'

export const BIN = join(import.meta.dirname, '../../bin/headroom')

/** Runs the CLI with KUBECONFIG cleared (a test names its kubeconfig), plus `env`. */
export function headroom(args: string[], env: Record<string, string | undefined> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(BIN, args, { env: { ...process.env, KUBECONFIG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}
