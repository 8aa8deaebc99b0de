/**
 * The CLI entry point: the only place that calls process.exit. Each command lives in its own
 * file (`cli/<name>.ts`, exporting `command(): Command`) and is imported only when it runs, so
 * `headroom plan` never loads the server or the runtime.
 *
 * Exit codes: 0 success; 1 invalid input or failed job (issues printed); 2 usage error.
 */
import { Command, CommanderError } from 'commander'
import { ConfigError, ExitError, InternalError, formatIssues } from '../errors.ts'

const COMMANDS: Record<string, string> = {
  plan: 'predict peak GPU memory of a fine-tune, per component, and what fits',
  check: 'validate a KAITO tuning ConfigMap (or bare training_config) against a model and GPU',
  init: 'write a tuning ConfigMap from the planner’s recommendation',
  tune: 'run a fine-tune (LoRA, QLoRA or full) with live memory telemetry',
  server: 'serve the API, Prometheus /metrics and the dashboard',
  render: 'render a KAITO Workspace or a batch/v1 Job for a fine-tune, refused when it cannot fit',
  serve: 'serve the model and its adapters over an OpenAI-compatible API',
  submit: 'apply rendered manifests (a Job or KAITO Workspace) to a cluster with server-side apply',
  status: 'show a submitted Job or Workspace; --follow streams its progress into the run store',
  sweep: 'run a grid of short fine-tunes and plot measured against predicted memory and tokens/s',
}

async function loadCommand(name: string): Promise<Command> {
  const mod = (await import(`./${name}.ts`)) as { command: () => Command }
  return mod.command()
}

function usageExit(cmd: Command): void {
  cmd.exitOverride()
  cmd.configureOutput({ outputError: (str, write) => write(str) })
  for (const sub of cmd.commands) usageExit(sub)
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('headroom')
    .description('Memory-aware LLM fine-tuning: plan, check, tune, observe.')
    .version('0.1.0')
    .showSuggestionAfterError(true)
  const name = argv[2]
  if (name && name in COMMANDS) {
    program.addCommand((await loadCommand(name)).description(COMMANDS[name]))
  } else {
    for (const [cmd, desc] of Object.entries(COMMANDS)) program.command(cmd).description(desc)
  }
  usageExit(program)
  try {
    await program.parseAsync(argv)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (err) {
    return report(err)
  }
}

// Library errors are surface-neutral; on the command line, an unknown name points to the list command.
const CLI_HINTS: Record<string, string> = {
  unknown_model: ' (headroom plan --list-models lists them)',
  unknown_gpu: ' (headroom plan --list-gpus lists them)',
}

/** Turns a thrown error into one clear message and an exit code; stack traces only for bugs. */
function report(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0
    return 2 // commander already printed "error: unknown option ..." with a suggestion
  }
  if (err instanceof ExitError) {
    process.stderr.write(`headroom: ${err.message}${CLI_HINTS[err.code ?? ''] ?? ''}\n`)
    return err.exitCode
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`${formatIssues(err.issues)}\n`)
    return 1
  }
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err)
  const kind = err instanceof InternalError ? 'internal error' : 'unexpected error'
  process.stderr.write(`headroom: ${kind} (a bug in Headroom; please report it with this output):\n${detail}\n`)
  return 70
}

main(process.argv).then(
  (code) => process.exit(code),
  (err) => process.exit(report(err)),
)
