/**
 * `headroom status NAME`: a submitted Job's (or KAITO Workspace's) state from its conditions;
 * with --follow, watches it to the end and streams the trainer's JSON-lines events from the
 * pod log into the same progress view as `tune` and into the run store (source `cluster`), so
 * the dashboard lists the run. Exit 0 when it succeeded, 1 when it failed.
 */
import { Command } from 'commander'
import { ExitError } from '../errors.ts'
import { parseEventLine, type RunSummary, type StepEvent, type TrainerEvent } from '../runtime/events.ts'
import { logEvery, progressLine, summaryLines } from '../runtime/progress.ts'
import { clusterReader, connect } from '../k8s/submit.ts'
import { clusterRunId, endState, fallbackSummary, findWorkload, follow, type Observed } from '../k8s/status.ts'
import { formatBytes, formatCount } from '../units.ts'

type StatusFlags = {
  namespace?: string
  follow?: boolean
  json?: boolean
  kubeconfig?: string
  context?: string
  db: string
  verbose?: boolean
}

export function command(): Command {
  return new Command('status')
    .argument('<name>', 'the Job or KAITO Workspace, as submitted (metadata.name)')
    .option('--namespace <ns>', 'its namespace (default: the kubeconfig context’s, else default)')
    .option('--follow', 'watch it to the end, streaming the trainer’s progress from the pod log into the run store')
    .option('--json', 'print the state (with --follow: the final run summary) as JSON on the last stdout line')
    .option('--kubeconfig <file>', 'kubeconfig file (default: KUBECONFIG, else ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context (default: its current-context)')
    .option('--db <file>', 'SQLite run store the followed run is recorded in (the one `headroom server` shows)', '.headroom/headroom.db')
    .option('--verbose', 'show the trainer’s own log lines as they come')
    .action(async (name: string, flags: StatusFlags) => {
      process.exitCode = await status(name, flags)
    })
}

function describe(o: Observed): string {
  const why = o.reason ? ` (${o.reason}${o.message ? `: ${o.message}` : ''})` : ''
  const pods = o.state === 'running' || o.state === 'pending' ? `, ${o.active} active pod${o.active === 1 ? '' : 's'}` : ''
  return `${o.kind} ${o.name} in namespace ${o.namespace}: ${o.state}${why}${pods}`
}

/** One line for the last trainer event, for the closing report of a run that did not succeed. */
export function lastEventLine(e: TrainerEvent): string {
  switch (e.type) {
    case 'oom':
      return `out of memory at step ${e.step} (${formatCount(e.seqLen)} tokens × batch ${e.batch}): ${e.message}`
    case 'error':
      return `${e.kind} error: ${e.message}${e.path ? ` (at ${e.path})` : ''}`
    case 'done':
      return `done: ${e.summary.state} after ${e.summary.steps} steps`
    case 'step':
      return `step ${e.step}/${e.totalSteps}, loss ${e.loss.toFixed(4)}, peak ${formatBytes(e.memory.peakAllocatedBytes)}`
    case 'checkpoint':
      return `checkpoint at step ${e.step}: ${e.path}`
    case 'eval':
      return `eval loss at step ${e.step}: ${e.loss.toFixed(4)}`
    case 'start':
      return `started ${e.method} on ${e.model.name}, ${e.totalSteps} steps`
  }
}

async function status(name: string, flags: StatusFlags): Promise<number> {
  const err = process.stderr
  const cluster = connect({ kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace })
  const reader = clusterReader(cluster)
  const found = await findWorkload(reader, name)
  if (!found) {
    throw new ExitError(`no Job or Workspace named ${name} in namespace ${cluster.namespace} (context ${cluster.context}): check the name (kubectl get jobs,workspaces -n ${cluster.namespace}) or pass --namespace`, { exitCode: 1 })
  }
  if (!flags.follow) {
    const runId = clusterRunId(found.namespace || cluster.namespace, found.name, found.uid)
    if (flags.json) process.stdout.write(`${JSON.stringify({ ...found, runId })}\n`)
    else {
      process.stdout.write(`${describe(found)}\n`)
      for (const c of found.conditions) process.stdout.write(`  ${c.type}=${c.status}${c.reason ? ` ${c.reason}` : ''}${c.message ? `: ${c.message}` : ''}\n`)
    }
    return found.state === 'failed' ? 1 : 0
  }
  return followToEnd(found, reader, cluster.namespace, flags)
}

async function followToEnd(start: Observed, reader: ReturnType<typeof clusterReader>, namespace: string, flags: StatusFlags): Promise<number> {
  const err = process.stderr
  const live = Boolean(err.isTTY) && !flags.json
  const ns = start.namespace || namespace
  const runId = clusterRunId(ns, start.name, start.uid)
  const { openDb, RunStore } = await import('../store/index.ts')
  const db = openDb(flags.db)
  try {
    const store = new RunStore(db)
    store.createRun({ id: runId, source: 'cluster', state: 'queued', options: { kind: start.kind, name: start.name, namespace: ns } })
    // A second follow reads the pod log from its start again: the events already stored are skipped.
    const alreadyStored = store.getRun(runId)?.lastSeq ?? 0
    let seen = 0
    let every = 0
    let lastStep: StepEvent | null = null
    let lastEvent: TrainerEvent | null = null
    let done: RunSummary | null = null
    let barShown = false
    const clearBar = () => {
      if (barShown) err.write('\r\x1b[2K')
      barShown = false
    }
    const say = (line: string) => {
      clearBar()
      err.write(`${line}\n`)
    }
    say(`headroom: ${describe(start)}; run ${runId} in ${flags.db}`)

    const show = (event: TrainerEvent) => {
      switch (event.type) {
        case 'start':
          every = logEvery(event.totalSteps)
          say(`headroom: ${event.method} on ${event.model.name} (${formatCount(event.model.params)} params) on ${event.deviceName ?? event.device}, ${event.totalSteps} steps${event.resumedFromStep ? `, resuming after step ${event.resumedFromStep}` : ''}`)
          return
        case 'step':
          lastStep = event
          if (live) {
            err.write(`\r\x1b[2K${progressLine(event, event.predictedPeakBytes ?? null)}`)
            barShown = true
          } else if (event.step % (every || logEvery(event.totalSteps)) === 0 || event.step === event.totalSteps || event.step === 1) {
            err.write(`${progressLine(event, event.predictedPeakBytes ?? null, false)}\n`)
          }
          return
        case 'checkpoint':
          say(`headroom: checkpoint at step ${event.step}: ${event.path}`)
          return
        case 'eval':
          say(`headroom: eval loss at step ${event.step}: ${event.loss.toFixed(4)}`)
          return
        case 'oom':
        case 'error':
          say(`headroom: ${lastEventLine(event)}`)
          return
        case 'done':
          return
      }
    }

    const { observed, pods } = await follow(reader, start, {
      onObserved: (o) => say(`headroom: ${describe(o)}`),
      onPod: (pod, container) => say(`headroom: streaming pod ${pod.name} (container ${container})`),
      onWaiting: (pod, reason, message) => say(`headroom: pod ${pod.name} waits: ${reason}${message ? `: ${message}` : ''}`),
      onLogError: (pod, message) => say(`headroom: the log of pod ${pod} stopped: ${message}`),
      onLine: (line) => {
        const parsed = parseEventLine(line)
        if (parsed.kind === 'log') {
          if (flags.verbose || line.startsWith('headroom:')) say(line)
          return
        }
        if (parsed.kind === 'invalid') {
          say(`headroom: warning: a trainer event does not match the event contract (docs/events.md), skipped: ${parsed.error}`)
          return
        }
        const event = parsed.event
        seen += 1
        lastEvent = event
        if (event.type === 'done') done = { ...fallbackSummary(event.summary.state, { steps: 0, firstLoss: null, lastLoss: null, device: null, predictedPeakBytes: null, measuredPeakBytes: null }), ...event.summary }
        show(event)
        if (seen <= alreadyStored) return
        try {
          store.appendEvents(runId, [event])
        } catch (e) {
          // The store's lifecycle refuses an impossible transition; the cluster is the truth here.
          say(`headroom: warning: run store did not take a ${event.type} event: ${(e as Error).message}`)
        }
      },
    })
    clearBar()
    if (live && lastStep) err.write(`${progressLine(lastStep, (lastStep as StepEvent).predictedPeakBytes ?? null)}\n`)

    const run = store.getRun(runId)
    let summary: RunSummary
    if (done) {
      summary = done
    } else {
      const state = endState(observed, pods, start.name)
      summary = fallbackSummary(state, {
        steps: run?.steps ?? 0,
        firstLoss: run?.summary?.firstLoss ?? null,
        lastLoss: run?.lastLoss ?? null,
        device: run?.device ?? null,
        predictedPeakBytes: run?.predictedPeakBytes ?? null,
        measuredPeakBytes: run?.measuredPeakBytes ?? null,
      })
      store.finish(runId, summary)
    }
    const out = flags.json ? err : process.stdout
    for (const line of summaryLines(summary, { runDir: `${start.kind.toLowerCase()}/${start.name} in namespace ${ns} (run store id ${runId})` })) out.write(`${line}\n`)
    const ok = observed.state === 'succeeded' && summary.state === 'succeeded'
    if (!ok) {
      const why = observed.reason ? `${observed.reason}${observed.message ? `: ${observed.message}` : ''}` : summary.state
      err.write(`headroom: ${start.kind} ${start.name} ${observed.state === 'succeeded' ? `succeeded but the trainer reported ${summary.state}` : `failed (${why})`}${lastEvent ? `; last event: ${lastEventLine(lastEvent)}` : '; the trainer reported no event (check kubectl logs)'}\n`)
    }
    if (flags.json) process.stdout.write(`${JSON.stringify({ runId, workload: observed, summary })}\n`)
    return ok ? 0 : 1
  } finally {
    db.close()
  }
}
