/**
 * The one module that talks to a Kubernetes API server (DESIGN.md §1; test/boundaries.test.ts
 * holds every other file to it), through @kubernetes/client-node 1.4: loading the kubeconfig,
 * server-side apply of rendered objects, and the reads `headroom status` needs (get, watch,
 * the Job's pods, a pod's log). Every refusal from the server becomes one ExitError line with
 * the fix (api-errors.ts); nothing here prints or exits.
 */
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { PassThrough } from 'node:stream'
import { createInterface } from 'node:readline'
import { ApiException, CoreV1Api, KubeConfig, KubernetesObjectApi, Log, PatchStrategy, Watch, type KubernetesObject } from '@kubernetes/client-node'
import { ExitError } from '../errors.ts'
import { apiErrorLine, missingApi, unreachableLine, type ApiStatus, type RequestTarget } from './api-errors.ts'
import { kubeconfigSource, objectNamespace, resolveNamespace } from './kubeconfig.ts'

/** Server-side apply's field manager: what `kubectl get -o yaml --show-managed-fields` names as owner. */
export const FIELD_MANAGER = 'headroom'

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'

/** A manifest object as rendered: apiVersion, kind, metadata.name at least. */
export type ManifestObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: unknown }

export type ConnectOptions = { kubeconfig?: string; context?: string; namespace?: string }

/** A loaded kubeconfig and the decisions made from it. */
export type Cluster = {
  readonly kc: KubeConfig
  readonly context: string
  readonly server: string
  readonly namespace: string
  /** True when --namespace chose the namespace (an object naming another one is then refused). */
  readonly namespaceFromFlag: boolean
}

/**
 * Loads the kubeconfig (kubeconfig.ts decides which) and selects the context. A missing file,
 * an unknown context or a context without a cluster is exit 1 with the fix.
 */
export function connect(opts: ConnectOptions): Cluster {
  const source = kubeconfigSource({
    flag: opts.kubeconfig,
    env: process.env.KUBECONFIG,
    home: homedir(),
    exists: existsSync,
    serviceAccountToken: SERVICE_ACCOUNT_TOKEN,
  })
  const kc = new KubeConfig()
  if (source.kind === 'none') {
    throw new ExitError(`no kubeconfig found (looked at ${source.looked.join(', ')}): pass --kubeconfig FILE, set KUBECONFIG, or write ~/.kube/config (e.g. az aks get-credentials)`, { exitCode: 1, path: '--kubeconfig' })
  }
  if (source.kind === 'in-cluster') {
    kc.loadFromCluster()
  } else {
    for (const [i, path] of source.paths.entries()) {
      if (!existsSync(path)) throw new ExitError(`kubeconfig ${path} (from ${source.from}) does not exist: give the path of a kubeconfig file`, { exitCode: 1, path: '--kubeconfig' })
      try {
        if (i === 0) kc.loadFromFile(path)
        else {
          const more = new KubeConfig()
          more.loadFromFile(path)
          kc.mergeConfig(more)
        }
      } catch (err) {
        throw new ExitError(`kubeconfig ${path} cannot be read: ${(err as Error).message}: give a valid kubeconfig (kubectl config view --kubeconfig ${path} shows what is wrong)`, { exitCode: 1, path: '--kubeconfig' })
      }
    }
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name)
      throw new ExitError(`--context ${opts.context} is not in the kubeconfig: use one of ${known.length ? known.join(', ') : '(none defined)'}`, { exitCode: 1, path: '--context' })
    }
    kc.setCurrentContext(opts.context)
  }
  const context = kc.getCurrentContext()
  const cluster = kc.getCurrentCluster()
  if (!context || !cluster) {
    throw new ExitError(`the kubeconfig has no current context with a cluster${context ? ` (context ${context})` : ''}: pass --context NAME or run kubectl config use-context NAME`, { exitCode: 1, path: '--context' })
  }
  const ctxNs = kc.getContextObject(context)?.namespace
  return { kc, context, server: cluster.server, namespace: resolveNamespace(opts.namespace, ctxNs), namespaceFromFlag: Boolean(opts.namespace) }
}

// ConfigMaps (the training config), Secrets and volumes first: the Job or Workspace mounts them,
// and a pod created before its ConfigMap sits in ContainerCreating.
const APPLY_RANK: Record<string, number> = { Namespace: 0, ConfigMap: 1, Secret: 1, PersistentVolumeClaim: 2, Service: 3 }

/** Objects in the order they are applied: dependencies before the workloads that mount them; stable otherwise. */
export function applyOrder<T extends { kind: string }>(objects: readonly T[]): T[] {
  return objects
    .map((o, i) => ({ o, i, r: APPLY_RANK[o.kind] ?? 9 }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.o)
}

/** KubernetesObjectApi with its discovery lookup (protected upstream) made callable. */
class ObjectApi extends KubernetesObjectApi {
  /** The API resource for apiVersion/kind, undefined when the group exists without that kind; throws 404 when the group is absent. */
  discover(apiVersion: string, kind: string) {
    return this.resource(apiVersion, kind)
  }
}

function objectApi(cluster: Cluster): ObjectApi {
  // Every namespaced object gets its namespace set explicitly (applyObjects, get), so the
  // upstream default-namespace lookup is not needed.
  return cluster.kc.makeApiClient(ObjectApi)
}

export type ApplyOptions = { dryRun?: boolean; force?: boolean }

/** What the API server answered for one applied object. */
export type Applied = { apiVersion: string; kind: string; name: string; namespace: string | null; uid: string | null; resourceVersion: string | null; dryRun: boolean }

function target(cluster: Cluster, verb: RequestTarget['verb'], apiVersion: string, kind: string, name?: string, namespace?: string): RequestTarget {
  return { verb, apiVersion, kind, name, namespace, context: cluster.context, server: cluster.server }
}

/** Turns a client error into an ExitError with one line (exit 1); anything else is rethrown as is. */
function clusterError(err: unknown, t: RequestTarget): Error {
  if (err instanceof ExitError) return err
  if (err instanceof ApiException) {
    let body: unknown = err.body
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body)
      } catch {
        /* a plain-text body is the message itself */
      }
    }
    return new ExitError(apiErrorLine(err.code, body as ApiStatus | string | undefined, t), { exitCode: 1 })
  }
  const e = err as { code?: string; cause?: { code?: string; message?: string }; message?: string; type?: string }
  const code = e.code ?? e.cause?.code
  if (code || e.type === 'system' || /fetch failed|ECONNREFUSED|ENOTFOUND|socket hang up/i.test(e.message ?? '')) {
    return new ExitError(unreachableLine(`${code ? `${code} ` : ''}${e.cause?.message ?? e.message ?? ''}`.trim(), t), { exitCode: 1 })
  }
  // client-node's own refusals (a plain-http server without insecure-skip-tls-verify, an
  // exec credential plugin that failed) are about the kubeconfig, not bugs in Headroom.
  if (err instanceof Error && /kubeconfig|skipTLSVerify|credential|certificate|exec/i.test(err.message)) {
    return new ExitError(`the kubeconfig of context ${t.context} cannot be used to reach ${t.server}: ${err.message.replace(/^Failed to fetch resource metadata for [^:]+: /, '')}. Fix the context's cluster or user entry (kubectl config view --minify)`, { exitCode: 1 })
  }
  return err as Error
}

/**
 * Server-side apply of every object, in applyOrder: PATCH with content type
 * application/apply-patch+yaml, fieldManager=headroom, force only when asked, dryRun=All for
 * `--dry-run server`. Each object's API is looked up first (discovery), so a Workspace on a
 * cluster without KAITO fails before anything was sent, with the fix. Stops at the first
 * refusal; the objects applied before it are listed in the message.
 */
export async function applyObjects(cluster: Cluster, objects: readonly ManifestObject[], opts: ApplyOptions = {}): Promise<Applied[]> {
  const api = objectApi(cluster)
  const ordered = applyOrder(objects).map((o) => structuredClone(o))
  // Namespaces and API discovery for all objects before the first write: all or nothing for these checks.
  for (const obj of ordered) {
    const t = target(cluster, 'apply', obj.apiVersion, obj.kind, obj.metadata?.name)
    let resource
    try {
      resource = await api.discover(obj.apiVersion, obj.kind)
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) throw new ExitError(missingApi(t), { exitCode: 1 })
      throw clusterError(err, t)
    }
    if (!resource) throw new ExitError(missingApi(t), { exitCode: 1 })
    if (resource.namespaced) {
      const ns = objectNamespace(obj.metadata.namespace, cluster.namespace, cluster.namespaceFromFlag)
      if ('error' in ns) throw new ExitError(`${obj.kind} ${obj.metadata.name} ${ns.error}`, { exitCode: 2, path: '--namespace' })
      obj.metadata.namespace = ns.namespace
    }
  }
  const applied: Applied[] = []
  for (const obj of ordered) {
    const t = target(cluster, 'apply', obj.apiVersion, obj.kind, obj.metadata.name, obj.metadata.namespace)
    let res: KubernetesObject
    try {
      res = await api.patch(obj as KubernetesObject, undefined, opts.dryRun ? 'All' : undefined, FIELD_MANAGER, opts.force ? true : undefined, PatchStrategy.ServerSideApply)
    } catch (err) {
      const e = clusterError(err, t)
      if (applied.length && e instanceof ExitError) {
        throw new ExitError(`${e.message} (already applied: ${applied.map((a) => `${a.kind.toLowerCase()}/${a.name}`).join(', ')})`, { exitCode: 1 })
      }
      throw e
    }
    applied.push({
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      name: obj.metadata.name,
      namespace: obj.metadata.namespace ?? null,
      uid: res.metadata?.uid ?? null,
      resourceVersion: res.metadata?.resourceVersion ?? null,
      dryRun: Boolean(opts.dryRun),
    })
  }
  return applied
}

/** What status needs from a cluster; status.ts codes against this, tests may stand in for it. */
export type ClusterReader = {
  readonly namespace: string
  /** The object, or undefined when it (or its API, for a custom kind) does not exist. */
  get(apiVersion: string, kind: string, name: string): Promise<ManifestObject | undefined>
  /** Calls onChange with the object on every change until the returned stop() is called. */
  watch(apiVersion: string, plural: string, name: string, onChange: (obj: ManifestObject) => void): Promise<() => void>
  /** The pods a Job created (label job-name=NAME), oldest first. */
  jobPods(jobName: string): Promise<PodInfo[]>
  /** Streams a container's log, one line at a time, until the container exits (follow=true). */
  followLog(pod: string, container: string, onLine: (line: string) => void): Promise<void>
}

/** The facts about a pod that status uses. */
export type PodInfo = {
  name: string
  phase: string
  created: string
  containers: string[]
  /** Each container's termination reason (e.g. OOMKilled) and exit code, when it terminated. */
  terminated: { container: string; reason: string | null; exitCode: number }[]
  /** Why a container waits (e.g. ImagePullBackOff), when one does. */
  waiting: { container: string; reason: string | null; message: string | null }[]
}

/** The read side of a cluster, for `headroom status`. */
export function clusterReader(cluster: Cluster): ClusterReader {
  const objects = objectApi(cluster)
  const core = cluster.kc.makeApiClient(CoreV1Api)
  const ns = cluster.namespace
  return {
    namespace: ns,
    async get(apiVersion, kind, name) {
      const t = target(cluster, 'get', apiVersion, kind, name, ns)
      try {
        const resource = await objects.discover(apiVersion, kind)
        if (!resource) return undefined
        return (await objects.read({ apiVersion, kind, metadata: { name, namespace: ns } })) as unknown as ManifestObject
      } catch (err) {
        // 404: no such object, or (discovery) no such API on this cluster: both mean "not here".
        if (err instanceof ApiException && err.code === 404) return undefined
        throw clusterError(err, t)
      }
    },
    async watch(apiVersion, plural, name, onChange) {
      const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`
      const path = `${base}/namespaces/${encodeURIComponent(ns)}/${plural}`
      const w = new Watch(cluster.kc)
      let stopped = false
      let controller: AbortController | undefined
      // The API server ends a watch after its timeout (minutes); start another until stopped.
      const start = async (): Promise<void> => {
        if (stopped) return
        controller = await w.watch(
          path,
          { fieldSelector: `metadata.name=${name}` },
          (type, obj) => {
            if (type === 'ADDED' || type === 'MODIFIED') onChange(obj as ManifestObject)
          },
          () => {
            if (!stopped) setTimeout(() => void start().catch(() => undefined), 1000).unref()
          },
        )
      }
      await start()
      return () => {
        stopped = true
        controller?.abort()
      }
    },
    async jobPods(jobName) {
      const t = target(cluster, 'list', 'v1', 'Pod', undefined, ns)
      try {
        const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${jobName}` })
        return list.items
          .map((p): PodInfo => ({
            name: p.metadata?.name ?? '',
            phase: p.status?.phase ?? 'Unknown',
            created: p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).toISOString() : '',
            containers: (p.spec?.containers ?? []).map((c) => c.name),
            terminated: (p.status?.containerStatuses ?? [])
              .filter((c) => c.state?.terminated)
              .map((c) => ({ container: c.name, reason: c.state?.terminated?.reason ?? null, exitCode: c.state?.terminated?.exitCode ?? 0 })),
            waiting: (p.status?.containerStatuses ?? [])
              .filter((c) => c.state?.waiting)
              .map((c) => ({ container: c.name, reason: c.state?.waiting?.reason ?? null, message: c.state?.waiting?.message ?? null })),
          }))
          .sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name))
      } catch (err) {
        throw clusterError(err, t)
      }
    },
    async followLog(pod, container, onLine) {
      const t = target(cluster, 'log', 'v1', 'Pod', pod, ns)
      const sink = new PassThrough()
      const lines = createInterface({ input: sink, crlfDelay: Infinity })
      lines.on('line', onLine)
      const ended = new Promise<void>((resolve) => lines.once('close', () => resolve()))
      try {
        await new Log(cluster.kc).log(ns, pod, container, sink, { follow: true })
      } catch (err) {
        sink.end()
        throw clusterError(err, t)
      }
      await ended
    },
  }
}
