/**
 * Runs a config check in a worker thread with a time and heap limit, so one large check
 * never stalls /healthz, /metrics or a run's event stream, and a hostile one cannot take the
 * server's memory.
 */
import { Worker } from 'node:worker_threads'
import { ConfigError, ExitError } from '../errors.ts'
import type { CheckReply } from './check-thread.ts'
import { httpError } from './http-error.ts'
import type { CheckInput } from './services.ts'

export type CheckWorkerOptions = {
  /** Give up after this long, milliseconds (default 30 s; a 1,000-line config takes under 1 s). */
  timeoutMs?: number
  /** V8 old-space limit of the worker, MiB (default 512: a 512 KiB config needs well under 100). */
  heapMb?: number
}

const THREAD = new URL(`./check-thread.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url)

/**
 * The worker's source. Run from TypeScript sources (bin/headroom runs under tsx), a worker
 * does not inherit the main thread's loader, so it imports the thread module through tsx.
 */
function bootstrap(): { code: string | URL; eval: boolean } {
  if (!THREAD.href.endsWith('.ts')) return { code: THREAD, eval: false }
  const api = import.meta.resolve('tsx/esm/api')
  return {
    code: `import(${JSON.stringify(api)}).then(({ tsImport }) => tsImport(${JSON.stringify(THREAD.href)}, ${JSON.stringify(THREAD.href)}))`,
    eval: true,
  }
}

/**
 * Checks a config in a fresh worker; rethrows the library's errors as the main thread's own
 * types, so the HTTP layer maps them as before.
 * @example await checkInWorker({ config: yaml, model: 'phi-3-mini-128k-instruct', gpu: 'A10' })
 */
export function checkInWorker(input: CheckInput, opts: CheckWorkerOptions = {}): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const { code, eval: isEval } = bootstrap()
  const worker = new Worker(code, {
    eval: isEval,
    workerData: input,
    resourceLimits: { maxOldGenerationSizeMb: opts.heapMb ?? 512 },
    // The worker inherits no flags it would choke on (--import of the main loader, --test).
    execArgv: [],
    stdout: false,
    stderr: false,
  })
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (fn: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      fn()
      void worker.terminate()
    }
    const timer = setTimeout(
      () => settle(() => reject(httpError(422, 'check_too_slow', 'config', `the check took more than ${timeoutMs / 1000} s: send a smaller config`))),
      timeoutMs,
    )
    worker.once('message', (reply: CheckReply) =>
      settle(() => {
        if (reply.ok) return resolve(reply.result)
        if (reply.kind === 'exit') return reject(new ExitError(reply.message, { path: reply.path, exitCode: reply.exitCode }))
        if (reply.kind === 'config') return reject(new ConfigError(reply.issues))
        reject(new Error(`check worker: ${reply.message}`))
      }),
    )
    worker.once('error', (err) =>
      settle(() => {
        // ERR_WORKER_OUT_OF_MEMORY: the input, not the server, is at fault.
        if ((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
          reject(httpError(422, 'check_too_large', 'config', 'the check ran out of its memory limit: send a smaller config'))
        } else reject(err)
      }),
    )
    worker.once('exit', (code) => settle(() => reject(new Error(`check worker exited with code ${code} before answering`))))
  })
}
