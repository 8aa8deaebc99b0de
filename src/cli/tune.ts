/**
 * `headroom tune`: runs a fine-tune through the supervisor with live progress, then prints
 * predicted against measured peak memory. With --json the last stdout line is the run summary
 * (DESIGN.md §2.1b); progress then goes to stderr only.
 */
import { Command, Option } from 'commander'
import { ExitError } from '../errors.ts'
import { LOSSES } from '../planner/fields.ts'
import { LOSS_CHUNK_TOKENS } from '../planner/logits.ts'
import type { StepEvent, TrainerEvent } from '../runtime/events.ts'
import { logEvery, progressLine, summaryLines } from '../runtime/progress.ts'
import { startRun, type SupervisedRun } from '../runtime/supervisor.ts'
import { checkDistributed } from '../runtime/torchrun.ts'
import { DEVICE_CHOICES, METHOD_CHOICES, PARALLELISMS, WEIGHTS_MODES } from '../runtime/trainer-choices.ts'
import type { TuneOptions } from '../runtime/types.ts'
import { formatBytes, formatCount } from '../units.ts'

/** The run options a user can set, plus what only the command line has. */
type TuneFlags = Omit<TuneOptions, 'runId' | 'env'> & {
  json?: boolean
  logEvery?: number
  verbose?: boolean
  server?: string
  serverToken?: string
}

// Trainer log lines kept to show when a run fails (the trainer's traceback lives there).
const LOG_TAIL_LINES = 30

function positiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 1) throw new ExitError(`${flag} must be a whole number of at least 1, got "${value}"`, { path: flag })
    return n
  }
}

function nonNegativeInt(flag: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n < 0) throw new ExitError(`${flag} must be a whole number of at least 0, got "${value}"`, { path: flag })
    return n
  }
}

export function command(): Command {
  return new Command('tune')
    .option('--config <file>', 'training_config YAML: a KAITO ConfigMap or the bare training_config document (default: QLoRA for the tiny model)')
    .option('--model <model>', 'catalog model, model directory or hub id (default: the embedded tiny Phi-3)')
    .option('--data <path|url>', 'dataset: jsonl, json, csv or parquet; messages, prompt/completion or text rows (default: examples/data)')
    .option('--output <dir>', 'where the adapter, checkpoints and run.json go (default: runs/<run id>)')
    .option('--max-steps <n>', 'stop after this many optimizer steps (overrides TrainingArguments.max_steps)', positiveInt('--max-steps'))
    .addOption(new Option('--device <device>', 'where to train (default: auto, a GPU when torch can use one)').choices(DEVICE_CHOICES))
    .addOption(new Option('--method <method>', 'fine-tuning method; auto follows the config (4/8-bit quantization → qlora, else lora)').choices(METHOD_CHOICES))
    .option('--resume <run>', 'continue a run (its id under runs/, or its directory) from its last checkpoint')
    .option('--skip-bad-rows', 'skip dataset rows that do not parse instead of refusing the run')
    .option('--auto-fit', 'after an out-of-memory failure, retry once with the planner’s recommended configuration')
    .addOption(new Option('--loss <impl>', `cross-entropy: full, or chunked (${LOSS_CHUNK_TOKENS.toLocaleString('en-US')} tokens at a time; overrides TrainingArguments.loss_implementation)`).choices(LOSSES))
    .option('--offload-activations', 'keep checkpointed block inputs in host memory (CUDA; a no-op on CPU; overrides TrainingArguments.activation_offloading)')
    .option('--packing', 'pack examples without padding (overrides TrainingArguments.packing)')
    .addOption(new Option('--weights <source>', 'pretrained: the model’s real weights, else fail (default); auto: real when present, else random weights built from its config (catalog models or a directory with config.json); random: always random. Random weights measure memory and speed only: the loss means nothing').choices(WEIGHTS_MODES))
    .option('--nproc <n>', 'ranks (processes) on this node, run under torchrun; gloo on CPU, nccl on CUDA (default 1)', positiveInt('--nproc'))
    .addOption(new Option('--parallelism <kind>', 'with --nproc: ddp (a replica per rank) or fsdp (FSDP2: parameters, gradients, optimizer state sharded)').choices(PARALLELISMS))
    .option('--nnodes <n>', 'nodes the run spans (each runs this command with its own --node-rank)', positiveInt('--nnodes'))
    .option('--node-rank <r>', 'this node’s rank, 0..nnodes-1 (0 holds the master and writes the adapter)', nonNegativeInt('--node-rank'))
    .option('--master-addr <addr>', 'address of node rank 0 (multi-node)')
    .option('--master-port <port>', 'TCP port on node rank 0 for the rendezvous (multi-node)', positiveInt('--master-port'))
    .option('--json', 'print the run summary as JSON on the last stdout line')
    .option('--log-every <n>', 'without a terminal, print a progress line every n steps (default: about ten lines a run)', positiveInt('--log-every'))
    .option('--verbose', 'show the trainer’s own log lines as they come')
    .option('--server <url>', 'report the run’s events to a running `headroom server` (its dashboard and /metrics show it)')
    .addOption(new Option('--server-token <token>', 'bearer token for --server').env('HEADROOM_SERVER_TOKEN'))
    .action(async (flags: TuneFlags) => {
      process.exitCode = await tune(flags)
    })
}

async function tune(flags: TuneFlags): Promise<number> {
  const err = process.stderr
  const live = Boolean(err.isTTY) && !flags.json
  const startedAt = Date.now()
  // A bad --output is one line with the fix before any trainer starts (no mkdir loop on /proc).
  if (flags.output !== undefined) await (await import('../files.ts')).checkOutputDir(flags.output, '--output')
  checkDistributed(flags)
  const run = await startRun(
    {
      config: flags.config,
      model: flags.model,
      data: flags.data,
      output: flags.output,
      maxSteps: flags.maxSteps,
      device: flags.device,
      method: flags.method,
      resume: flags.resume,
      skipBadRows: flags.skipBadRows,
      autoFit: flags.autoFit,
      loss: flags.loss,
      offloadActivations: flags.offloadActivations,
      packing: flags.packing,
      weights: flags.weights,
      nproc: flags.nproc,
      parallelism: flags.parallelism,
      nnodes: flags.nnodes,
      nodeRank: flags.nodeRank,
      masterAddr: flags.masterAddr,
      masterPort: flags.masterPort,
    },
    { onProgress: (line) => err.write(`${line}\n`) },
  )

  const reported = flags.server ? (await import('../server/client.ts')).reportRun(flags.server, run, { token: flags.serverToken }) : undefined
  const logTail: string[] = []
  let every = flags.logEvery ?? 0
  // The supervisor's figure for the longest batch actually run (never the max_length worst case).
  let predictedNow: number | null = run.peak.bytes
  let lastStep: StepEvent | null = null
  let barShown = false
  const clearBar = () => {
    if (barShown) err.write('\r\x1b[2K')
    barShown = false
  }

  run.on('log', (line) => {
    logTail.push(line)
    if (logTail.length > LOG_TAIL_LINES) logTail.shift()
    if (flags.verbose || line.startsWith('headroom:')) {
      clearBar()
      err.write(`${line}\n`)
    }
  })
  run.on('event', (event: TrainerEvent) => {
    switch (event.type) {
      case 'start': {
        if (!every) every = logEvery(event.totalSteps)
        const resumed = event.resumedFromStep ? `, resuming after step ${event.resumedFromStep}` : ''
        const examples = event.examples !== undefined ? `, ${formatCount(event.examples)} examples` : ''
        err.write(`headroom: run ${run.id}: ${event.method} on ${event.model.name} (${formatCount(event.model.params)} params) on ${event.deviceName ?? event.device}, ${event.totalSteps} steps${examples}${resumed}\n`)
        if (event.weights?.source === 'random') {
          err.write(`headroom: random weights built from ${event.weights.configFrom ?? 'its config'} (--weights ${event.weights.mode}): peak memory and tokens/s are the real model's; the loss means nothing\n`)
        }
        if (event.ranks !== undefined && event.effectiveBatch !== undefined) {
          err.write(`headroom: ${event.ranks} ranks (${event.parallelism}): effective batch ${event.effectiveBatch} = ${event.perDeviceBatch} per device × ${event.ranks} ranks × ${event.gradientAccumulation} gradient accumulation; the prediction is per rank\n`)
        }
        if (run.prediction) {
          const p = run.prediction.record
          err.write(`headroom: planner's worst case at max_length ${formatCount(p.seq)} tokens × batch ${p.batch}: ${formatBytes(p.peakAllocatedBytes)} peak allocated; the prediction below follows the longest batch actually trained\n`)
        }
        return
      }
      case 'step': {
        if (event.rank !== undefined && event.rank !== run.leadRank) return // one progress view: every rank's loss is the same
        lastStep = event
        if (!every) every = logEvery(event.totalSteps) // another node's supervisor sees no start
        if (event.predictedPeakBytes !== undefined) predictedNow = event.predictedPeakBytes
        if (live) {
          err.write(`\r\x1b[2K${progressLine(event, predictedNow)}`)
          barShown = true
        } else if (event.step % every === 0 || event.step === event.totalSteps || event.step === 1) {
          err.write(`${progressLine(event, predictedNow, false)}\n`)
        }
        return
      }
      case 'checkpoint':
        clearBar()
        err.write(`headroom: checkpoint at step ${event.step}: ${event.path}\n`)
        return
      case 'eval':
        clearBar()
        err.write(`headroom: eval loss at step ${event.step}: ${event.loss.toFixed(4)}\n`)
        return
      default:
        return
    }
  })

  const summary = await run.done
  await reported
  clearBar()
  if (live && lastStep) err.write(`${progressLine(lastStep, predictedNow)}\n`)
  const out = flags.json ? err : process.stdout
  const record = run.record
  const observed = record.prediction?.atObservedSeq
  const predictedAt = record.prediction
    ? observed
      ? `at the longest batch run, ${formatCount(observed.seq)} tokens × ${record.prediction.batch} (worst case at max_length ${formatCount(record.prediction.seq)}: ${formatBytes(record.prediction.peakAllocatedBytes)})`
      : `(no batch trained; worst case at max_length ${formatCount(record.prediction.seq)} × ${record.prediction.batch}: ${formatBytes(record.prediction.peakAllocatedBytes)})`
    : record.predictionError
      ? `(no prediction: ${record.predictionError})`
      : undefined
  // A run that never stepped has no numbers to report, only the reason (below).
  if (summary.steps > 0 || summary.state === 'succeeded') {
    for (const line of summaryLines(summary, { predictedAt, runDir: run.outputDir, seconds: (Date.now() - startedAt) / 1000 })) out.write(`${line}\n`)
  }

  const code = explain(run, summary.state, logTail)
  if (flags.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  return code
}


/** Prints why a run did not succeed, and what to do; returns the exit code. */
function explain(run: SupervisedRun, state: string, logTail: string[]): number {
  const err = process.stderr
  switch (state) {
    case 'succeeded':
      return 0
    case 'cancelled':
      err.write(`headroom: run ${run.id} was interrupted; checkpoints (if any) are in ${run.outputDir}\n`)
      return 130
    case 'preempted':
      err.write(`headroom: run ${run.id} stopped on SIGTERM at step ${run.record.summary.steps} after writing a checkpoint; continue with: headroom tune --resume ${run.outputDir}\n`)
      return 1
    case 'oom': {
      const oom = run.lastOom
      err.write(`headroom: out of memory${oom ? ` at step ${oom.step} (${formatCount(oom.seqLen)} tokens × batch ${oom.batch}): ${oom.message}` : ''}\n`)
      if (run.oomAdvice) err.write(`headroom: ${run.oomAdvice}\n`)
      if (run.autoFit) err.write(`headroom: --auto-fit retried with ${run.autoFit.configPath} (${run.autoFit.message}) and still ran out of memory\n`)
      return 1
    }
    default: {
      const e = run.lastError
      if (e) {
        err.write(`headroom: the run failed: ${e.message}${e.path && !e.message.includes(e.path) ? ` (at ${e.path})` : ''}\n`)
      } else {
        err.write(`headroom: the run failed: ${run.record.exit?.reason ?? 'the trainer exited without a result'}\n`)
        if (logTail.length) err.write(`last trainer output:\n${logTail.join('\n')}\n`)
      }
      return 1
    }
  }
}
