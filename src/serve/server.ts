/**
 * Starts and stops `headroom serve` with the transformers worker: spawns the worker through the
 * supervisor, waits for its ready line, then listens. The only file here that opens a socket.
 * When the worker dies, everything in flight is answered 503 and `ended` resolves with the
 * worker's own error line, so the CLI can exit 1 with it.
 */
import { createAdaptorServer } from '@hono/node-server'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ServedModel } from '../runtime/serve-events.ts'
import { startServeWorker, type ServeWorkerExit, type ServeWorkerOptions } from '../runtime/supervisor.ts'
import { runtimePaths } from '../runtime/python-env.ts'
import { createServeApp } from './app.ts'
import { Dispatcher } from './dispatcher.ts'
import { ServeMetrics } from './metrics.ts'
import { predictServingBytes } from './prediction.ts'

/** How often the worker is asked for its queue, running sequences and memory (the /metrics gauges). */
export const STATS_INTERVAL_MS = 1000

export type ServeOptions = ServeWorkerOptions & {
  host?: string
  /** Default 5000 (KAITO's inference port); 0 picks a free one. */
  port?: number
  token?: string
  /** Requests in flight (queued in the worker or decoding) beyond which the next gets 429. */
  maxConcurrency?: number
  bodyLimitBytes?: number
  onLog?: (line: string) => void
}

export const DEFAULT_MAX_CONCURRENCY = 64

export type RunningServe = {
  url: string
  port: number
  models: ServedModel[]
  device: string
  /** Resolves when serving ends: `worker` when the worker died (its exit and reason), else null after close(). */
  ended: Promise<{ worker: ServeWorkerExit } | null>
  close(): Promise<void>
}

/**
 * Starts the worker and listens once it is ready. Rejects (ExitError, exit 1) when the worker
 * cannot start, with the worker's own message.
 * @example const s = await startServe({ model: 'default', port: 0 }); console.log(s.url); await s.close()
 */
export async function startServe(opts: ServeOptions): Promise<RunningServe> {
  const maxConcurrency = opts.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY
  // The worker batches what is in flight; it never needs room for more than the server admits.
  const maxBatch = opts.maxBatch ?? Math.min(maxConcurrency, 16)
  const worker = await startServeWorker({ ...opts, maxBatch })
  const log = opts.onLog ?? ((line: string) => process.stderr.write(`${line}\n`))
  worker.on('log', log)
  const ready = await worker.ready
  const metrics = new ServeMetrics()
  metrics.workerState({ memory: ready.memory })
  const prediction = await predictServingBytes({
    model: opts.model ?? 'default',
    assetsDir: (opts.paths ?? runtimePaths()).assetsDir,
    device: ready.device,
    dtype: ready.dtype,
    batch: maxBatch,
    adapters: ready.models.filter((m) => m.kind === 'adapter').length,
  })
  if ('bytes' in prediction) metrics.predicted(prediction.bytes, prediction)
  else log(`headroom serve: no predicted memory on /metrics: ${prediction.unavailable}`)
  const dispatcher = new Dispatcher(worker, { maxConcurrency })
  worker.on('event', (e) => {
    if (e.type === 'stats') metrics.workerState(e)
    else if (e.type === 'error' && e.id === undefined) log(`headroom serve: worker error: ${e.message}`)
  })
  const stats = setInterval(() => worker.send({ op: 'stats' }), STATS_INTERVAL_MS)
  stats.unref()

  const app = createServeApp({ dispatcher, models: ready.models, metrics, token: opts.token, bodyLimitBytes: opts.bodyLimitBytes })
  const host = opts.host ?? '127.0.0.1'
  const server = createAdaptorServer({ fetch: app.fetch, hostname: host }) as Server
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.port ?? 5000, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    clearInterval(stats)
    await worker.stop()
    throw err
  }
  const port = (server.address() as AddressInfo).port
  let closing = false
  const closeServer = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeIdleConnections()
      // Streams still open after a grace period are cut: the worker behind them is gone.
      setTimeout(() => server.closeAllConnections(), 2000).unref()
    })

  const ended = worker.exited.then(async (exit) => {
    clearInterval(stats)
    if (closing) return null
    dispatcher.workerGone(exit.reason)
    // Let the 503s just queued reach their clients before the socket closes.
    await new Promise((r) => setTimeout(r, 100))
    await closeServer()
    return { worker: exit }
  })

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    models: ready.models,
    device: ready.device,
    ended,
    async close() {
      if (closing) return
      closing = true
      clearInterval(stats)
      dispatcher.workerGone('the server is shutting down')
      await Promise.all([closeServer(), worker.stop()])
    },
  }
}
