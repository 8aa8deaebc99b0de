/**
 * `--target kaito`: a kaito.sh/v1beta1 Workspace whose `tuning` names the preset, method,
 * the ConfigMap rendered beside it, the input and the output (field by field as KAITO's CRD
 * and webhook define them: ../shared/kaito-data/tuning/workspace_tuning_api_fields.csv). Pure.
 */
import type { TuningMethod } from '../config/rules.ts'
import type { DataSource } from './sources.ts'
import { labels, metadata, type Meta } from './objects.ts'

export type WorkspaceOutput = { kind: 'pvc'; claim: string } | { kind: 'image'; image: string; pushSecret: string }

export type WorkspaceSpec = {
  meta: Meta
  instanceType: string
  preset: string
  method: TuningMethod
  configMap: string
  data: DataSource
  output: WorkspaceOutput
  annotations: Record<string, string>
}

/** The Workspace object. KAITO mounts the input at /mnt/data and the output at output_dir. */
/** A Workspace's kind, metadata and resource, the same for tuning and inference. */
export function workspaceHead(meta: Meta, instanceType: string, annotations: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'kaito.sh/v1beta1',
    kind: 'Workspace',
    metadata: metadata(meta, { labels: labels(meta.name, 'workspace'), annotations }),
    resource: {
      instanceType,
      // Required by the CRD; with node auto-provisioning KAITO labels the GPU node it creates with these.
      labelSelector: { matchLabels: { apps: meta.name } },
    },
  }
}

export function workspace(spec: WorkspaceSpec): Record<string, unknown> {
  const input =
    spec.data.kind === 'url'
      ? { urls: [spec.data.url] }
      : { volumeSource: { persistentVolumeClaim: { claimName: spec.data.claim, readOnly: true } } }
  const output =
    spec.output.kind === 'pvc'
      ? { volumeSource: { persistentVolumeClaim: { claimName: spec.output.claim } } }
      : { image: spec.output.image, imagePushSecret: spec.output.pushSecret }
  return {
    ...workspaceHead(spec.meta, spec.instanceType, spec.annotations),
    tuning: {
      preset: { name: spec.preset },
      method: spec.method,
      config: spec.configMap,
      input,
      output,
    },
  }
}
