/**
 * Starts and stops `headroom server`: opens the store, rebuilds /metrics from it, builds the
 * app and listens. The only file here that opens a socket.
 */
import { createAdaptorServer } from '@hono/node-server'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { RunMetrics } from '../metrics/registry.ts'
import { openDb } from '../store/db.ts'
import { RunStore } from '../store/runs.ts'
import { createApp } from './app.ts'
import { RunHub } from './hub.ts'
import { pathPolicy } from './path-policy.ts'
import { defaultServices, type Services } from './services.ts'

/** The shipped datasets (examples/data of this checkout), which the trainer's default reads. */
const DATA_DIR = fileURLToPath(new URL('../../examples/data', import.meta.url))

/** What clients may name when the operator allows nothing explicitly: runs and shipped data. */
export function defaultAllowedPaths(runsDir = 'runs'): string[] {
  return [runsDir, DATA_DIR]
}

export type ServerOptions = {
  /** Default 127.0.0.1. Any other address needs a token (the CLI enforces it). */
  host?: string
  /** Default 8080; 0 picks a free port. */
  port?: number
  /** SQLite file of the run store. */
  db: string
  token?: string
  runsDir?: string
  /** Where `headroom sweep` output directories are listed from (dashboard /sweeps); default sweeps. */
  sweepsDir?: string
  bodyLimitBytes?: number
  /**
   * Directories whose files clients may name (models, datasets, configs); default the runs
   * directory and the shipped datasets. Every other server path is answered 403.
   */
  allowPaths?: string[]
  services?: Services
  /** Export Node process metrics (default true). */
  processMetrics?: boolean
}

export type RunningServer = {
  url: string
  port: number
  store: RunStore
  hub: RunHub
  /** The directories whose files clients may name, resolved. */
  allowedPaths: readonly string[]
  /** Stops local runs, ends live streams, closes the socket and the database. */
  close(): Promise<void>
}

/**
 * Opens the store and listens.
 * @example const server = await startServer({ db: '.headroom/headroom.db', port: 0 })
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const db = openDb(opts.db)
  const store = new RunStore(db)
  // Local runs that were going when the last server stopped have no supervisor any more:
  // lost (resumable with `headroom tune --resume <outputDir>`), never running.
  for (const run of store.unfinished()) {
    if (run.source === 'local') store.markLost(run.id)
  }
  const metrics = new RunMetrics({ countRunsByState: () => store.countByState(), processMetrics: opts.processMetrics })
  metrics.restore(store.latestSamples())
  const policy = pathPolicy(opts.allowPaths ?? defaultAllowedPaths(opts.runsDir))
  const services = opts.services ?? defaultServices({ policy })
  const hub = new RunHub(store, metrics, () => services.startRun())
  const app = createApp({ store, metrics, hub, services, token: opts.token, bodyLimitBytes: opts.bodyLimitBytes, runsDir: opts.runsDir, policy, sweepsDir: opts.sweepsDir })

  const host = opts.host ?? '127.0.0.1'
  const server = createAdaptorServer({ fetch: app.fetch, hostname: host }) as Server
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.port ?? 8080, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (err) {
    db.close()
    throw err
  }
  const port = (server.address() as AddressInfo).port
  const urlHost = host.includes(':') ? `[${host}]` : host
  let closing: Promise<void> | undefined
  return {
    url: `http://${urlHost}:${port}`,
    port,
    store,
    hub,
    allowedPaths: policy.roots,
    close() {
      closing ??= (async () => {
        await hub.shutdown()
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          // SSE followers and keep-alive sockets would hold close() open forever.
          server.closeAllConnections()
        })
        db.close()
      })()
      return closing
    },
  }
}
