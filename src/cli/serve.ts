/**
 * `headroom serve`: an OpenAI-compatible server for the base model and its adapters (DESIGN.md
 * §2.1d). Listens on 127.0.0.1 unless told otherwise; any other address serves only with a
 * token. Runs until SIGINT or SIGTERM; if the worker dies, it answers what was in flight with
 * 503 and exits 1 with the worker's error.
 */
import { Command, Option } from 'commander'
import { ExitError } from '../errors.ts'
import { DEVICE_CHOICES, type DeviceChoice } from '../runtime/trainer-choices.ts'

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])

type Flags = {
  model?: string
  adapter?: string[]
  adaptersDir?: string
  host: string
  port: string
  token?: string
  engine: 'auto' | 'transformers' | 'vllm'
  device: DeviceChoice
  maxConcurrency: string
}

export function command(): Command {
  return new Command('serve')
    .option('--model <name|dir>', 'base model: a model directory, a hub id, or the embedded default', 'default')
    .option('--adapter <NAME=DIR>', 'serve a LoRA adapter as model id NAME (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--adapters-dir <dir>', "serve every subdirectory holding an adapter_config.json, named by the subdirectory (KAITO's /mnt/adapter layout)")
    .option('--host <address>', 'address to listen on; anything but loopback needs --token', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: any free port)', '5000')
    .addOption(new Option('--token <token>', 'bearer token every route but /health requires').env('HEADROOM_SERVE_TOKEN'))
    .addOption(new Option('--engine <engine>', 'transformers (any device) or vllm (GPU, vLLM installed); auto picks vllm only where it can run').choices(['auto', 'transformers', 'vllm']).default('auto'))
    .addOption(new Option('--device <device>', 'where the model runs').choices(DEVICE_CHOICES).default('auto'))
    .option('--max-concurrency <n>', 'requests in flight (queued or decoding) before the next is answered 429', '64')
    .action(async (flags: Flags) => {
      const port = Number(flags.port)
      if (!/^\d+$/.test(flags.port) || port > 65535) throw new ExitError(`--port must be an integer from 0 to 65535, got "${flags.port}"`, { path: '--port' })
      const maxConcurrency = Number(flags.maxConcurrency)
      if (!/^\d+$/.test(flags.maxConcurrency) || maxConcurrency < 1) {
        throw new ExitError(`--max-concurrency must be a whole number of requests, 1 or more, got "${flags.maxConcurrency}"`, { path: '--max-concurrency' })
      }
      if (!LOOPBACK.has(flags.host) && !flags.token) {
        throw new ExitError(`--host ${flags.host} exposes the model to the network: set --token <secret> (or HEADROOM_SERVE_TOKEN), or keep --host 127.0.0.1`, { path: '--host' })
      }
      if (flags.token !== undefined && flags.token.length < 8) throw new ExitError('--token must be at least 8 characters', { path: '--token' })

      const { parseAdapterFlag, checkAdapterDirs, adaptersIn } = await import('../serve/adapters.ts')
      const adapters = (flags.adapter ?? []).map(parseAdapterFlag)
      checkAdapterDirs(adapters)
      const fromDir = flags.adaptersDir ? adaptersIn(flags.adaptersDir) : []

      const engine = await chooseEngine(flags)
      if (engine === 'vllm') return serveWithVllm(flags, [...adapters, ...fromDir], port, maxConcurrency)

      const { startServe } = await import('../serve/server.ts')
      let serve
      try {
        serve = await startServe({
          model: flags.model,
          adapters,
          adaptersDir: flags.adaptersDir,
          device: flags.device,
          host: flags.host,
          port,
          token: flags.token,
          maxConcurrency,
          onProgress: (line) => process.stderr.write(`${line}\n`),
        })
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'EADDRINUSE') throw new ExitError(`port ${port} on ${flags.host} is in use: pick another --port`, { path: '--port', exitCode: 1 })
        if (code === 'EADDRNOTAVAIL') throw new ExitError(`cannot listen on ${flags.host}: no such local address`, { path: '--host', exitCode: 1 })
        throw err
      }
      process.stderr.write(
        `headroom serve: listening on ${serve.url} (models: ${serve.models.map((m) => m.id).join(', ')}; device ${serve.device}; up to ${maxConcurrency} requests in flight${flags.token ? '; token required' : ''})\n`,
      )
      // main() exits when this action resolves, so it resolves only once serving has ended.
      const outcome = await new Promise<{ signal: NodeJS.Signals } | { worker: { reason: string } }>((resolve) => {
        const stop = (signal: NodeJS.Signals) => resolve({ signal })
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
        void serve.ended.then((e) => e && resolve(e))
      })
      if ('worker' in outcome) throw new ExitError(`the inference worker stopped; requests in flight were answered 503: ${outcome.worker.reason}`, { exitCode: 1 })
      process.stderr.write(`headroom serve: ${outcome.signal}: stopping the worker and closing\n`)
      await serve.close()
    })
}

async function chooseEngine(flags: Flags): Promise<'transformers' | 'vllm'> {
  if (flags.engine === 'transformers') return 'transformers'
  const { nvidiaGpuNames, torchHasCuda } = await import('../runtime/device.ts')
  const { runtimePaths } = await import('../runtime/python-env.ts')
  const { decideEngine } = await import('../serve/engine.ts')
  const paths = runtimePaths()
  const gpus = nvidiaGpuNames()
  // Importing vLLM takes seconds: ask only when it could be chosen.
  const probe = flags.engine === 'vllm' || (gpus.length > 0 && flags.device !== 'cpu')
  const { vllmImportable } = await import('../runtime/supervisor.ts')
  const vllm = probe ? await vllmImportable(paths) : { ok: false, detail: 'not probed: no GPU' }
  const decision = decideEngine({ requested: flags.engine, vllm, gpus, torchCuda: torchHasCuda(paths.venvDir), device: flags.device })
  if ('error' in decision) throw new ExitError(decision.error, { path: '--engine', exitCode: 1 })
  return decision.engine
}

async function serveWithVllm(flags: Flags, adapters: { name: string; dir: string }[], port: number, maxConcurrency: number): Promise<void> {
  const { existsSync } = await import('node:fs')
  const { resolve } = await import('node:path')
  const { runtimePaths } = await import('../runtime/python-env.ts')
  const { vllmArgs } = await import('../serve/engine.ts')
  const { runVllmServer } = await import('../runtime/supervisor.ts')
  const paths = runtimePaths()
  const model = flags.model === 'default' || flags.model === 'tiny-phi3' ? paths.defaultModelDir : existsSync(flags.model!) ? resolve(flags.model!) : flags.model!
  const args = vllmArgs({ model, adapters: adapters.map((a) => ({ name: a.name, dir: resolve(a.dir) })), host: flags.host, port, token: flags.token, maxConcurrency })
  process.stderr.write(`headroom serve: engine vllm: python -m vllm.entrypoints.openai.api_server ${args.map((a) => (a === flags.token ? '<token>' : a)).join(' ')}\n`)
  const exit = await runVllmServer(args, paths)
  if (exit.code !== 0 && exit.signal !== 'SIGINT' && exit.signal !== 'SIGTERM') throw new ExitError(`vLLM's server stopped: ${exit.reason}`, { exitCode: 1 })
}
