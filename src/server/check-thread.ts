/**
 * The worker side of POST /v1/checks: runs checkConfig off the server's event loop and posts
 * back the capped result, or the error it threw as plain data (errors do not cross threads).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { checkConfig } from '../config/check.ts'
import { capIssues } from '../config/issue-cap.ts'
import { ConfigError, ExitError } from '../errors.ts'
import type { CheckInput } from './services.ts'

export type CheckReply =
  | { ok: true; result: unknown }
  | { ok: false; kind: 'exit'; message: string; path?: string; exitCode: number }
  | { ok: false; kind: 'config'; issues: { code: string; path: string; message: string }[] }
  | { ok: false; kind: 'bug'; message: string }

async function run(input: CheckInput): Promise<CheckReply> {
  try {
    const result = await checkConfig(input.config, { model: input.model, gpu: input.gpu, seq: input.seq, method: input.method, target: input.target, names: 'fields' })
    return { ok: true, result: capIssues(result) }
  } catch (err) {
    if (err instanceof ExitError) return { ok: false, kind: 'exit', message: err.message, path: err.path, exitCode: err.exitCode }
    if (err instanceof ConfigError) return { ok: false, kind: 'config', issues: err.issues.map(({ code, path, message }) => ({ code, path, message })) }
    return { ok: false, kind: 'bug', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }
  }
}

parentPort?.postMessage(await run(workerData as CheckInput))
