/** Pieces every rendered manifest shares: metadata, labels, the tuning ConfigMap. Pure. */
import { stringify } from 'yaml'
import type { Sections } from '../config/codec.ts'

export type Meta = { name: string; namespace?: string }

/** Labels on every object Headroom renders, so `kubectl get -l app.kubernetes.io/instance=NAME` finds them all. */
export function labels(instance: string, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'headroom',
    'app.kubernetes.io/instance': instance,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': 'headroom',
  }
}

export function metadata(meta: Meta, extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    name: meta.name,
    ...(meta.namespace ? { namespace: meta.namespace } : {}),
    ...(extra.labels ? { labels: extra.labels } : {}),
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
  }
}

/** The file both KAITO's pod and Headroom's trainer read, at /mnt/config/training_config.yaml. */
export const CONFIG_KEY = 'training_config.yaml'

/** KAITO's format: a ConfigMap whose `training_config.yaml` holds a `training_config:` map (DESIGN §2.3). */
export function tuningConfigMap(meta: Meta, sections: Sections, instance: string, annotations: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(meta, { labels: labels(instance, 'tuning-config'), annotations }),
    data: { [CONFIG_KEY]: stringify({ training_config: sections }, { version: '1.1', lineWidth: 0 }) },
  }
}

/** A shell word: single-quoted unless it is plainly safe. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/** The image's non-root user (docker/Dockerfile `USER 1000:1000`). */
export const RUNTIME_UID = 1000

/**
 * Where a GPU pod of the runtime image runs and as whom, shared by the training Job and the
 * serving Deployment: the non-root user, the instance type's nodes, and the GPU pools' taints.
 */
export function gpuPodPlacement(instanceType: string): Record<string, unknown> {
  return {
    securityContext: { runAsNonRoot: true, runAsUser: RUNTIME_UID, runAsGroup: RUNTIME_UID, fsGroup: RUNTIME_UID },
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'node.kubernetes.io/instance-type', operator: 'In', values: [instanceType] }] }],
        },
      },
    },
    // GPU node pools are usually tainted (the NVIDIA device plugin's and AKS's conventions).
    tolerations: [
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
      { key: 'sku', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
    ],
  }
}
