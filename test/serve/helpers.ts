/** Shared fixtures for the serve tests: a server on a free port in front of the fake worker. */
import { spawn } from 'node:child_process'
import { join, resolve } from 'node:path'
import { startServe, type RunningServe, type ServeOptions } from '../../src/serve/server.ts'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const BIN = join(ROOT, 'bin', 'headroom')
export const PYTHON = join(ROOT, '.venv', 'bin', 'python')
export const FAKE_WORKER = join(import.meta.dirname, 'fixtures', 'fake-worker.mjs')

/** A real HTTP server on 127.0.0.1:<free port> whose worker is the fake one. */
export async function fakeServe(opts: Partial<ServeOptions> & { env?: Record<string, string> } = {}): Promise<RunningServe> {
  return startServe({ port: 0, worker: { command: process.execPath, args: [FAKE_WORKER] }, onLog: () => {}, ...opts })
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json, text }
}

/** The `data:` payloads of a server-sent-events body, in order. */
export function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) =>
      block
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n'),
    )
}

/** Runs bin/headroom as a subprocess to its end: exit code, stdout, stderr. */
export function runCli(args: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(BIN, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      done({ code, stdout, stderr })
    })
  })
}
