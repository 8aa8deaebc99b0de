/**
 * `headroom server`: the API, Prometheus /metrics and the dashboard. Listens on 127.0.0.1
 * unless told otherwise; any other address serves only with a token. Runs until SIGINT or
 * SIGTERM, then stops its runs and closes the store cleanly.
 */
import { Command, Option } from 'commander'
import { stat } from 'node:fs/promises'
import { ExitError } from '../errors.ts'

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])

type Flags = { host: string; port: string; db: string; token?: string; runsDir: string; allowPath?: string[]; sweepsDir: string }

export function command(): Command {
  return new Command('server')
    .option('--host <address>', 'address to listen on; anything but loopback needs --token', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port)', '8080')
    .option('--db <file>', 'SQLite file of the run store', '.headroom/headroom.db')
    .addOption(new Option('--token <token>', 'bearer token every route but /healthz requires').env('HEADROOM_SERVER_TOKEN'))
    .option('--runs-dir <dir>', 'where runs started from the API write their output', 'runs')
    .option('--sweeps-dir <dir>', 'where the dashboard lists `headroom sweep` results from (/sweeps)', 'sweeps')
    .option(
      '--allow-path <dir>',
      'a directory whose files API clients may name as model, data or config (repeatable; default: the runs directory and examples/data)',
      (dir: string, all: string[] = []) => [...all, dir],
    )
    .action(async (flags: Flags) => {
      const port = Number(flags.port)
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new ExitError(`--port must be an integer from 0 to 65535, got "${flags.port}"`, { path: '--port' })
      }
      if (!LOOPBACK.has(flags.host) && !flags.token) {
        throw new ExitError(
          `--host ${flags.host} exposes runs and the trainer to the network: set --token <secret> (or HEADROOM_SERVER_TOKEN), or keep --host 127.0.0.1`,
          { path: '--host' },
        )
      }
      if (flags.token !== undefined && flags.token.length < 8) {
        throw new ExitError('--token must be at least 8 characters', { path: '--token' })
      }
      // openDb creates the store's directory; a bad --db is one line before anything opens.
      if (flags.db !== ':memory:') {
        const { checkOutputFile } = await import('../files.ts')
        await checkOutputFile(flags.db, '--db', { example: '.headroom/headroom.db', createsParents: true })
      }
      for (const dir of flags.allowPath ?? []) {
        const s = await stat(dir).catch(() => undefined)
        if (!s?.isDirectory()) throw new ExitError(`--allow-path ${dir}: ${s ? 'is not a directory' : 'no such directory'}: give an existing directory`, { path: '--allow-path', exitCode: 1 })
      }
      const { startServer } = await import('../server/server.ts')
      let server
      try {
        server = await startServer({ host: flags.host, port, db: flags.db, token: flags.token, runsDir: flags.runsDir, allowPaths: flags.allowPath, sweepsDir: flags.sweepsDir })
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'EADDRINUSE') throw new ExitError(`port ${port} on ${flags.host} is in use: pick another --port`, { path: '--port', exitCode: 1 })
        if (code === 'EADDRNOTAVAIL') throw new ExitError(`cannot listen on ${flags.host}: no such local address`, { path: '--host', exitCode: 1 })
        if (code?.startsWith('SQLITE_') || /run store/.test((err as Error).message ?? '')) {
          throw new ExitError(`--db ${flags.db}: ${(err as Error).message}: give the path of a Headroom run store, or a new file`, { path: '--db', exitCode: 1 })
        }
        throw err
      }
      process.stderr.write(`headroom server: listening on ${server.url} (store: ${flags.db}${flags.token ? ', token required' : ''}; clients may name files under ${server.allowedPaths.join(', ')})\n`)
      // main() exits when this action resolves, so it resolves only once the server is closed.
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        const stop = (s: NodeJS.Signals) => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          resolve(s)
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
      })
      process.stderr.write(`headroom server: ${signal}: stopping runs and closing\n`)
      await server.close()
    })
}
