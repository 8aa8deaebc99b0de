/**
 * A loopback stand-in for a Kubernetes API server: a real HTTP server on 127.0.0.1 that speaks
 * the few endpoints `headroom submit` and `status` use, the way kube-apiserver does:
 * discovery (/api/v1, /apis/GROUP/VERSION), server-side apply (PATCH, application/apply-patch+yaml,
 * fieldManager required, dryRun=All persists nothing, unknown namespace 404), GET, list with
 * labelSelector, watch (`?watch=true`, one JSON event per line, kept open), and pod logs
 * (`follow=true` streams, then ends when the container "exits"). Every request is recorded for
 * the tests to assert; `fault` makes the next matching request fail with a metav1.Status.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown }; [k: string]: unknown }

export type Recorded = { method: string; path: string; query: URLSearchParams; contentType: string | null; authorization: string | null; body: unknown }

type Resource = { name: string; kind: string; namespaced: boolean; verbs: string[] }

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']
const GROUPS: Record<string, Resource[]> = {
  v1: [
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true, verbs: VERBS },
    { name: 'secrets', kind: 'Secret', namespaced: true, verbs: VERBS },
    { name: 'services', kind: 'Service', namespaced: true, verbs: VERBS },
    { name: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true, verbs: VERBS },
    { name: 'pods', kind: 'Pod', namespaced: true, verbs: VERBS },
    { name: 'namespaces', kind: 'Namespace', namespaced: false, verbs: VERBS },
  ],
  'batch/v1': [{ name: 'jobs', kind: 'Job', namespaced: true, verbs: VERBS }],
  'kaito.sh/v1beta1': [{ name: 'workspaces', kind: 'Workspace', namespaced: true, verbs: VERBS }],
}

export type Fault = { method?: string; pathIncludes: string; status: number; reason: string; message: string; details?: unknown; times?: number }

export type PodLog = { lines: string[]; delayMs?: number; onEnd?: () => void }

export class FakeApiServer {
  readonly requests: Recorded[] = []
  /** key: `${groupVersion}|${plural}|${namespace}|${name}` */
  readonly objects = new Map<string, Obj>()
  readonly namespaces = new Set(['default', 'ml'])
  readonly logs = new Map<string, PodLog>()
  faults: Fault[] = []
  /** When false, the kaito.sh API is absent (discovery 404), as on a cluster without KAITO. */
  kaito = true
  #server: Server | undefined
  #watchers: { gv: string; plural: string; ns: string; name: string | null; res: ServerResponse }[] = []
  #rv = 100
  url = ''

  async start(): Promise<string> {
    this.#server = createServer((req, res) => void this.#handle(req, res))
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve))
    const addr = this.#server.address() as { port: number }
    this.url = `http://127.0.0.1:${addr.port}`
    return this.url
  }

  async close(): Promise<void> {
    for (const w of this.#watchers) w.res.end()
    this.#watchers = []
    this.#server?.closeAllConnections()
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve())
  }

  /** Writes a kubeconfig with a bearer token and a context whose namespace is `ml`. */
  kubeconfig(dir: string, opts: { namespace?: string; server?: string } = {}): string {
    const file = join(dir, 'kubeconfig')
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: fake`,
        // client-node refuses plain http unless TLS verification is off (there is no TLS to verify).
        `  cluster: {server: "${opts.server ?? this.url}", insecure-skip-tls-verify: true}`,
        'users:',
        '- name: tester',
        '  user: {token: fake-token}',
        'contexts:',
        '- name: fake',
        `  context: {cluster: fake, user: tester${opts.namespace === undefined ? ', namespace: ml' : opts.namespace ? `, namespace: ${opts.namespace}` : ''}}`,
        '- name: other',
        '  context: {cluster: fake, user: tester}',
        'current-context: fake',
        '',
      ].join('\n'),
    )
    return file
  }

  /** Puts an object as if a controller had created it (uid, resourceVersion, creationTimestamp). */
  put(obj: Obj): Obj {
    const gv = obj.apiVersion
    const plural = GROUPS[gv]?.find((r) => r.kind === obj.kind)?.name
    if (!plural) throw new Error(`fake apiserver: no resource for ${gv} ${obj.kind}`)
    const ns = obj.metadata.namespace ?? ''
    const key = `${gv}|${plural}|${ns}|${obj.metadata.name}`
    const before = this.objects.get(key)
    const stored: Obj = {
      ...obj,
      metadata: {
        ...obj.metadata,
        uid: (before?.metadata.uid as string | undefined) ?? (obj.metadata.uid as string | undefined) ?? randomUUID(),
        resourceVersion: String(++this.#rv),
        creationTimestamp: (before?.metadata.creationTimestamp as string | undefined) ?? (obj.metadata.creationTimestamp as string | undefined) ?? new Date().toISOString(),
      },
    }
    this.objects.set(key, stored)
    this.#notify(gv, plural, ns, stored, before ? 'MODIFIED' : 'ADDED')
    return stored
  }

  get(apiVersion: string, plural: string, ns: string, name: string): Obj | undefined {
    return this.objects.get(`${apiVersion}|${plural}|${ns}|${name}`)
  }

  /** Requests whose path includes `part` (and method, when given). */
  find(part: string, method?: string): Recorded[] {
    return this.requests.filter((r) => r.path.includes(part) && (!method || r.method === method))
  }

  #notify(gv: string, plural: string, ns: string, obj: Obj, type: string): void {
    for (const w of this.#watchers) {
      if (w.gv === gv && w.plural === plural && w.ns === ns && (!w.name || w.name === obj.metadata.name)) w.res.write(`${JSON.stringify({ type, object: obj })}\n`)
    }
  }

  #status(res: ServerResponse, code: number, reason: string, message: string, details?: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code }))
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x')
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    let body: unknown = raw || undefined
    try {
      body = raw ? JSON.parse(raw) : undefined
    } catch {
      /* kept as text */
    }
    const rec: Recorded = { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, contentType: req.headers['content-type'] ?? null, authorization: req.headers.authorization ?? null, body }
    this.requests.push(rec)

    const fault = this.faults.find((f) => (!f.method || f.method === rec.method) && rec.path.includes(f.pathIncludes))
    if (fault) {
      if (fault.times !== undefined && --fault.times <= 0) this.faults = this.faults.filter((f) => f !== fault)
      return this.#status(res, fault.status, fault.reason, fault.message, fault.details)
    }
    if (rec.authorization !== 'Bearer fake-token') return this.#status(res, 401, 'Unauthorized', 'Unauthorized')

    // Discovery: /api/v1, /apis/GROUP/VERSION
    const disc = u.pathname.match(/^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/)
    if (disc) {
      const gv = disc[1] ?? disc[2]
      if (!GROUPS[gv] || (gv.startsWith('kaito.sh/') && !this.kaito)) return this.#status(res, 404, 'NotFound', 'the server could not find the requested resource')
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify({ kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources: GROUPS[gv].map((r) => ({ ...r, singularName: '' })) }))
    }

    const m = u.pathname.match(/^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(\/log)?$/)
    if (!m) return this.#status(res, 404, 'NotFound', 'the server could not find the requested resource')
    const gv = m[1] ?? m[2]
    const [ns, plural, name, log] = [m[3] ?? '', m[4], m[5], m[6]]
    const resource = GROUPS[gv]?.find((r) => r.name === plural)
    if (!resource || (gv.startsWith('kaito.sh/') && !this.kaito)) return this.#status(res, 404, 'NotFound', 'the server could not find the requested resource')
    if (resource.namespaced && ns && !this.namespaces.has(ns)) return this.#status(res, 404, 'NotFound', `namespaces "${ns}" not found`, { name: ns, kind: 'namespaces' })

    if (log && req.method === 'GET') return this.#log(res, ns, name!, u.searchParams)

    if (req.method === 'PATCH' && name) {
      if (rec.contentType !== 'application/apply-patch+yaml') return this.#status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml`)
      if (!u.searchParams.get('fieldManager')) return this.#status(res, 422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
      const obj = body as Obj
      if (obj?.metadata?.name !== name) return this.#status(res, 400, 'BadRequest', `the name of the object (${obj?.metadata?.name}) does not match the name on the URL (${name})`)
      const dry = u.searchParams.get('dryRun') === 'All'
      const result = dry ? { ...obj, metadata: { ...obj.metadata, uid: randomUUID(), resourceVersion: '' } } : this.put({ ...obj, metadata: { ...obj.metadata, namespace: ns || undefined } })
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(result))
    }

    if (req.method === 'GET' && name) {
      const obj = this.objects.get(`${gv}|${plural}|${ns}|${name}`)
      if (!obj) return this.#status(res, 404, 'NotFound', `${plural}.${gv.split('/')[0]} "${name}" not found`, { name, kind: plural })
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(obj))
    }

    if (req.method === 'GET') {
      const selected = this.#select(gv, plural, ns, u.searchParams)
      if (u.searchParams.get('watch') === 'true') {
        const field = u.searchParams.get('fieldSelector')?.match(/^metadata\.name=(.+)$/)?.[1] ?? null
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
        for (const o of selected) res.write(`${JSON.stringify({ type: 'ADDED', object: o })}\n`)
        const w = { gv, plural, ns, name: field, res }
        this.#watchers.push(w)
        res.on('close', () => (this.#watchers = this.#watchers.filter((x) => x !== w)))
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify({ kind: `${resource.kind}List`, apiVersion: gv, metadata: { resourceVersion: String(this.#rv) }, items: selected }))
    }
    return this.#status(res, 405, 'MethodNotAllowed', `${req.method} is not supported by the stand-in`)
  }

  #select(gv: string, plural: string, ns: string, q: URLSearchParams): Obj[] {
    const field = q.get('fieldSelector')?.match(/^metadata\.name=(.+)$/)?.[1]
    const labels = (q.get('labelSelector') ?? '')
      .split(',')
      .filter(Boolean)
      .map((s) => s.split('='))
    return [...this.objects.entries()]
      .filter(([k]) => k.startsWith(`${gv}|${plural}|${ns}|`))
      .map(([, o]) => o)
      .filter((o) => !field || o.metadata.name === field)
      .filter((o) => labels.every(([k, v]) => o.metadata.labels?.[k] === v))
  }

  async #log(res: ServerResponse, ns: string, pod: string, q: URLSearchParams): Promise<void> {
    if (!this.objects.get(`v1|pods|${ns}|${pod}`)) return this.#status(res, 404, 'NotFound', `pods "${pod}" not found`)
    const script = this.logs.get(pod)
    if (!script) return this.#status(res, 400, 'BadRequest', `container in pod "${pod}" is waiting to start: ContainerCreating`)
    res.writeHead(200, { 'content-type': 'text/plain' })
    for (const line of script.lines) {
      res.write(`${line}\n`)
      if (script.delayMs) await new Promise((r) => setTimeout(r, script.delayMs))
    }
    // Without follow the log is a snapshot; with it the stream ends when the container exits, as here.
    res.end()
    script.onEnd?.()
    void q
  }
}
