/**
 * The objects `render --inference` builds. Pure.
 * - kaito: a Workspace whose `inference` names the preset and the adapters (KAITO's CRD,
 *   workspace-v1beta1.schema.json: inference.adapters[].source.{name,image}, strength a string).
 * - job: an apps/v1 Deployment running `headroom serve` on the runtime image, on one GPU of the
 *   instance type, and a ClusterIP Service on port 5000. Adapters are tune-run output
 *   directories on PersistentVolumeClaims, mounted read-only at /mnt/adapters/NAME.
 */
import { gpuPodPlacement, labels, metadata, type Meta } from './objects.ts'
import { workspaceHead } from './kaito.ts'

/** serve's default port (src/cli/serve.ts) and KAITO's inference port. */
export const SERVE_PORT = 5000

/** The server container's name. */
export const SERVER_CONTAINER = 'server'

/** Where each adapter appears in the pod: serve --adapter NAME=/mnt/adapters/NAME. */
export const ADAPTERS_MOUNT = '/mnt/adapters'


/**
 * Startup allowance: the pod downloads the weights from the hub, then loads them (a 7B model in
 * bf16 is ~15 GB: about 2 minutes at 1 Gbit/s). 60 probes x 10 s = 10 minutes before the
 * kubelet gives up; liveness only starts counting after that.
 */
const STARTUP_PROBES = 60
const PROBE_PERIOD_S = 10

export type ServedAdapter = { name: string; claim: string; path?: string }

export type WorkspaceInferenceSpec = {
  meta: Meta
  instanceType: string
  preset: string
  adapters: { name: string; image: string }[]
  annotations: Record<string, string>
}

export function inferenceWorkspace(spec: WorkspaceInferenceSpec): Record<string, unknown> {
  return {
    ...workspaceHead(spec.meta, spec.instanceType, spec.annotations),
    inference: {
      preset: { name: spec.preset },
      ...(spec.adapters.length ? { adapters: spec.adapters.map((a) => ({ source: { name: a.name, image: a.image } })) } : {}),
    },
  }
}

export type ServeSpec = {
  meta: Meta
  instanceType: string
  image: string
  /** serve --model: a hub id, downloaded in the pod. */
  modelRef: string
  adapters: ServedAdapter[]
  /** A Secret with key `token`: HEADROOM_SERVE_TOKEN, which serve reads for --token. */
  tokenSecret: string
  annotations: Record<string, string>
}

/** The Deployment and the Service, in apply order (Service first, so its DNS name exists when pods start). */
export function serveObjects(spec: ServeSpec): Record<string, unknown>[] {
  const name = spec.meta.name
  const podLabels = labels(name, 'server')
  const claims = [...new Set(spec.adapters.map((a) => a.claim))]
  const volumeOf = (claim: string) => `adapters-${claims.indexOf(claim)}`
  const volumes: Record<string, unknown>[] = [
    // The hub cache: weights are downloaded once per pod.
    { name: 'cache', emptyDir: {} },
    { name: 'dshm', emptyDir: { medium: 'Memory' } },
    ...claims.map((c) => ({ name: volumeOf(c), persistentVolumeClaim: { claimName: c, readOnly: true } })),
  ]
  const mounts: Record<string, unknown>[] = [
    { name: 'cache', mountPath: '/cache' },
    { name: 'dshm', mountPath: '/dev/shm' },
    ...spec.adapters.map((a) => ({ name: volumeOf(a.claim), mountPath: `${ADAPTERS_MOUNT}/${a.name}`, readOnly: true, ...(a.path ? { subPath: a.path } : {}) })),
  ]
  const args = [
    'serve',
    '--model',
    spec.modelRef,
    '--host',
    '0.0.0.0',
    '--port',
    String(SERVE_PORT),
    ...spec.adapters.flatMap((a) => ['--adapter', `${a.name}=${ADAPTERS_MOUNT}/${a.name}`]),
  ]
  const health = { httpGet: { path: '/health', port: 'http' }, periodSeconds: PROBE_PERIOD_S }
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(spec.meta, { labels: labels(name, 'server') }),
    spec: {
      type: 'ClusterIP',
      selector: podLabels,
      ports: [{ name: 'http', port: SERVE_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  }
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(spec.meta, { labels: labels(name, 'server'), annotations: spec.annotations }),
    spec: {
      replicas: 1,
      selector: { matchLabels: podLabels },
      // One GPU per pod: Recreate frees it before the new pod asks for one (RollingUpdate would wait for a second GPU).
      strategy: { type: 'Recreate' },
      template: {
        metadata: { labels: podLabels },
        spec: {
          ...gpuPodPlacement(spec.instanceType),
          containers: [
            {
              name: SERVER_CONTAINER,
              image: spec.image,
              command: ['headroom'],
              args,
              env: [
                { name: 'HEADROOM_SERVE_TOKEN', valueFrom: { secretKeyRef: { name: spec.tokenSecret, key: 'token' } } },
                { name: 'PYTORCH_CUDA_ALLOC_CONF', value: 'expandable_segments:True' },
                { name: 'HF_HOME', value: '/cache/huggingface' },
                { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hf-token', key: 'token', optional: true } } },
              ],
              ports: [{ name: 'http', containerPort: SERVE_PORT, protocol: 'TCP' }],
              resources: { requests: { 'nvidia.com/gpu': '1' }, limits: { 'nvidia.com/gpu': '1' } },
              startupProbe: { ...health, failureThreshold: STARTUP_PROBES },
              readinessProbe: { ...health, failureThreshold: 3 },
              livenessProbe: { ...health, failureThreshold: 6 },
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  }
  return [service, deployment]
}
