/**
 * `headroom status`: what a submitted Job or KAITO Workspace is doing, read from its
 * conditions, and the loop that follows it (watch the object, stream each pod's log). The
 * decisions are pure functions over API objects; the loop talks to the cluster only through
 * the ClusterReader that submit.ts (the one module that talks to a cluster) provides.
 */
import type { RunState, RunSummary } from '../runtime/events.ts'
import { stateForExit } from '../runtime/exit-codes.ts'
import type { ClusterReader, ManifestObject, PodInfo } from './submit.ts'

/** Where a cluster workload is; `succeeded` and `failed` are final. */
export type ClusterState = 'pending' | 'running' | 'suspended' | 'succeeded' | 'failed'

export type Condition = { type: string; status: string; reason: string | null; message: string | null }

/** One look at the workload: its kind, identity, state and the conditions it was read from. */
export type Observed = {
  kind: 'Job' | 'Workspace'
  name: string
  namespace: string
  uid: string | null
  state: ClusterState
  /** The condition reason behind the state (e.g. BackoffLimitExceeded, PodFailurePolicy). */
  reason: string | null
  message: string | null
  conditions: Condition[]
  /** Pods running now, for a Job (status.active). */
  active: number
}

export const JOB_API = { apiVersion: 'batch/v1', kind: 'Job', plural: 'jobs' } as const
export const WORKSPACE_API = { apiVersion: 'kaito.sh/v1beta1', kind: 'Workspace', plural: 'workspaces' } as const

function conditionsOf(obj: ManifestObject): Condition[] {
  const raw = ((obj.status as { conditions?: unknown[] } | undefined)?.conditions ?? []) as Record<string, unknown>[]
  return raw.map((c) => ({
    type: String(c.type ?? ''),
    status: String(c.status ?? 'Unknown'),
    reason: typeof c.reason === 'string' ? c.reason : null,
    message: typeof c.message === 'string' ? c.message : null,
  }))
}

const isTrue = (conds: Condition[], type: string) => conds.find((c) => c.type === type && c.status === 'True')

/**
 * A batch/v1 Job's state from its conditions (Kubernetes API reference, JobCondition):
 * Complete=True succeeded, Failed=True failed; FailureTarget=True (1.31+) is a failure the
 * controller is still cleaning up, reported as failed already so a follower stops; a Job
 * with active pods runs; spec.suspend holds it.
 */
export function jobState(obj: ManifestObject): Pick<Observed, 'state' | 'reason' | 'message'> {
  const conds = conditionsOf(obj)
  const done = isTrue(conds, 'Complete') ?? isTrue(conds, 'SuccessCriteriaMet')
  if (done) return { state: 'succeeded', reason: done.reason, message: done.message }
  const failed = isTrue(conds, 'Failed') ?? isTrue(conds, 'FailureTarget')
  if (failed) return { state: 'failed', reason: failed.reason, message: failed.message }
  const suspended = isTrue(conds, 'Suspended')
  if (suspended || (obj.spec as { suspend?: boolean } | undefined)?.suspend) return { state: 'suspended', reason: suspended?.reason ?? 'Suspended', message: suspended?.message ?? null }
  const status = (obj.status ?? {}) as { active?: number; startTime?: string }
  if ((status.active ?? 0) > 0) return { state: 'running', reason: null, message: null }
  return { state: 'pending', reason: null, message: null }
}

/**
 * A KAITO Workspace's state (kaito.sh/v1beta1 status.conditions): WorkspaceSucceeded=True
 * succeeded; WorkspaceSucceeded=False with a failure reason failed; JobStarted=True runs.
 * KAITO runs tuning as a Job of the workspace's name (tuning_pod_runtime.yaml), and that Job's
 * conditions, when given, win: they say at once what the Workspace reports later.
 */
export function workspaceState(ws: ManifestObject, job?: ManifestObject): Pick<Observed, 'state' | 'reason' | 'message'> {
  if (job) {
    const j = jobState(job)
    if (j.state === 'succeeded' || j.state === 'failed') return j
  }
  const conds = conditionsOf(ws)
  const ok = conds.find((c) => c.type === 'WorkspaceSucceeded')
  if (ok?.status === 'True') return { state: 'succeeded', reason: ok.reason, message: ok.message }
  if (ok?.status === 'False' && /fail/i.test(`${ok.reason ?? ''}`)) return { state: 'failed', reason: ok.reason, message: ok.message }
  if (isTrue(conds, 'JobStarted') || (job && jobState(job).state === 'running')) return { state: 'running', reason: null, message: null }
  return { state: 'pending', reason: ok?.reason ?? null, message: ok?.message ?? null }
}

/** One Observed from a Job or a Workspace (with the Workspace's Job, when known). */
export function observe(obj: ManifestObject, job?: ManifestObject): Observed {
  const kind = obj.kind === 'Workspace' ? 'Workspace' : 'Job'
  const s = kind === 'Job' ? jobState(obj) : workspaceState(obj, job)
  const active = ((kind === 'Job' ? obj : job)?.status as { active?: number } | undefined)?.active ?? 0
  return {
    kind,
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? '',
    uid: typeof obj.metadata.uid === 'string' ? obj.metadata.uid : null,
    ...s,
    conditions: conditionsOf(obj),
    active,
  }
}

export function isFinal(state: ClusterState): boolean {
  return state === 'succeeded' || state === 'failed'
}

/**
 * The run store's id for a cluster run: name and namespace, plus the object's uid so a Job
 * deleted and submitted again under the same name is a new run. Fits the store's id rule
 * (1-64 of letters, digits, ".", "_", "-"; Kubernetes names use only those).
 * @example clusterRunId('ml', 'tune-phi3', '6f1c2a9e-...') // 'tune-phi3.ml.6f1c2a9e'
 */
export function clusterRunId(namespace: string, name: string, uid: string | null): string {
  const tail = `.${namespace}${uid ? `.${uid.replace(/[^A-Za-z0-9]/g, '').slice(0, 8)}` : ''}`
  return `${name.slice(0, Math.max(1, 64 - tail.length))}${tail}`.slice(0, 64)
}

/**
 * The container whose log carries the trainer's events: the only one; else the one named
 * like the workload (KAITO names its main container after the Workspace); else `trainer`;
 * else the first (KAITO's sidecars, pusher and pause, come after it).
 */
export function trainerContainer(pod: PodInfo, workload: string): string {
  if (pod.containers.length <= 1) return pod.containers[0] ?? workload
  return pod.containers.find((c) => c === workload) ?? pod.containers.find((c) => c === 'trainer') ?? pod.containers[0]
}

/**
 * How a run that ended without a `done` event ended, from the pods: an OOMKilled container or
 * the trainer's out-of-memory exit code (3) is `oom`; the trainer's other exit codes map as
 * for a local run (exit-codes.ts); otherwise the workload's own state.
 */
export function endState(observed: Observed, pods: readonly PodInfo[], workload: string): RunState {
  if (observed.state === 'succeeded') return 'succeeded'
  const last = [...pods].reverse().find((p) => p.terminated.length)
  const term = last?.terminated.find((t) => t.container === trainerContainer(last, workload)) ?? last?.terminated[0]
  if (term?.reason === 'OOMKilled') return 'oom'
  if (term) {
    const s = stateForExit(term.exitCode, null)
    return s === 'succeeded' ? 'failed' : s
  }
  return 'failed'
}

/** The summary stored for a run that ended without the trainer's `done` (killed, never started). */
export function fallbackSummary(
  state: RunState,
  progress: { steps: number; firstLoss: number | null; lastLoss: number | null; device: 'cpu' | 'cuda' | null; predictedPeakBytes: number | null; measuredPeakBytes: number | null },
): RunSummary {
  return {
    state,
    steps: progress.steps,
    firstLoss: progress.firstLoss,
    lastLoss: progress.lastLoss,
    adapterDir: null,
    device: progress.device ?? 'cuda',
    predictedPeakBytes: progress.predictedPeakBytes,
    measuredPeakBytes: progress.measuredPeakBytes,
  }
}

/** Finds NAME as a Job, else as a KAITO Workspace (whose tuning Job has the same name). */
export async function findWorkload(reader: ClusterReader, name: string): Promise<Observed | undefined> {
  const job = await reader.get(JOB_API.apiVersion, JOB_API.kind, name)
  const ws = await reader.get(WORKSPACE_API.apiVersion, WORKSPACE_API.kind, name)
  if (ws) return observe(ws, job)
  if (job) return observe(job)
  return undefined
}

/** How many times a pod's log is asked for before following moves on without it. */
const LOG_TRIES = 3

export type FollowHandlers = {
  /** Every change of the workload's state (watch events and polls), deduplicated. */
  onObserved?: (o: Observed) => void
  /** A pod whose log starts streaming now. */
  onPod?: (pod: PodInfo, container: string) => void
  /** A pod that waits (ImagePullBackOff, Unschedulable...), once per reason. */
  onWaiting?: (pod: PodInfo, reason: string, message: string | null) => void
  /** One log line of the trainer container, in order. */
  onLine: (line: string, pod: string) => void
  /** A log stream that failed (its pod was deleted, say); following goes on. */
  onLogError?: (pod: string, message: string) => void
}

/**
 * Follows a workload to its end: watches its conditions, streams the log of every pod it
 * starts (one after the other, oldest first: a Job retried after a disruption starts a new
 * pod that resumes from the checkpoint), and returns the final observation and the pods once
 * the workload succeeded or failed. `pollMs` bounds how long a new pod goes unseen (pods are
 * listed, not watched).
 */
export async function follow(
  reader: ClusterReader,
  start: Observed,
  handlers: FollowHandlers,
  opts: { pollMs?: number; signal?: AbortSignal } = {},
): Promise<{ observed: Observed; pods: PodInfo[] }> {
  const pollMs = opts.pollMs ?? 2000
  let latest = start
  let wake: () => void = () => undefined
  const changed = (o: Observed) => {
    const before = latest
    latest = o
    if (o.state !== before.state || o.reason !== before.reason) handlers.onObserved?.(o)
    wake()
  }
  const api = start.kind === 'Workspace' ? WORKSPACE_API : JOB_API
  let lastWs: ManifestObject | undefined
  let lastJob: ManifestObject | undefined
  const stops: (() => void)[] = []
  stops.push(
    await reader.watch(api.apiVersion, api.plural, start.name, (obj) => {
      if (start.kind === 'Workspace') lastWs = obj
      else lastJob = obj
      changed(lastWs ? observe(lastWs, lastJob) : observe(obj))
    }),
  )
  if (start.kind === 'Workspace') {
    // The Workspace's tuning Job says first when the run ended.
    stops.push(
      await reader.watch(JOB_API.apiVersion, JOB_API.plural, start.name, (job) => {
        lastJob = job
        if (lastWs) changed(observe(lastWs, job))
        else changed({ ...latest, ...workspaceStateFromJob(latest, job) })
      }),
    )
  }
  const streamed = new Set<string>()
  const logFailures = new Map<string, number>()
  const delivered = new Map<string, number>()
  const waited = new Set<string>()
  let pods: PodInfo[] = []
  try {
    for (;;) {
      if (opts.signal?.aborted) break
      pods = await reader.jobPods(start.name)
      for (const pod of pods) {
        if (streamed.has(pod.name)) continue
        if (pod.phase === 'Pending') {
          for (const w of pod.waiting) {
            const key = `${pod.name}/${w.reason}`
            if (w.reason && !waited.has(key)) {
              waited.add(key)
              handlers.onWaiting?.(pod, w.reason, w.message)
            }
          }
          continue
        }
        streamed.add(pod.name)
        const container = trainerContainer(pod, start.name)
        handlers.onPod?.(pod, container)
        try {
          // A retried log starts again from the container's first line: skip what was delivered.
          let index = 0
          await reader.followLog(pod.name, container, (line) => {
            index += 1
            if (index <= (delivered.get(pod.name) ?? 0)) return
            delivered.set(pod.name, index)
            handlers.onLine(line, pod.name)
          })
        } catch (err) {
          // A container between states (just started, restarting) refuses its log for a moment:
          // try that pod again on the next rounds, a few times, before giving up on it.
          const tries = (logFailures.get(pod.name) ?? 0) + 1
          logFailures.set(pod.name, tries)
          if (tries < LOG_TRIES) streamed.delete(pod.name)
          else handlers.onLogError?.(pod.name, (err as Error).message)
        }
      }
      if (isFinal(latest.state)) {
        // Pods' final container states (OOMKilled, exit codes) are read once more at the end.
        pods = await reader.jobPods(start.name)
        const unseen = pods.filter((p) => !streamed.has(p.name) && p.phase !== 'Pending')
        if (!unseen.length) break
        continue
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
        opts.signal?.addEventListener('abort', () => wake(), { once: true })
      })
      wake = () => undefined
    }
  } finally {
    for (const stop of stops) stop()
  }
  return { observed: latest, pods }
}

function workspaceStateFromJob(latest: Observed, job: ManifestObject): Pick<Observed, 'state' | 'reason' | 'message' | 'active'> {
  const j = jobState(job)
  const active = (job.status as { active?: number } | undefined)?.active ?? 0
  return isFinal(j.state) || j.state === 'running' ? { ...j, active } : { state: latest.state, reason: latest.reason, message: latest.message, active }
}
