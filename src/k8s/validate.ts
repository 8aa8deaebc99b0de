/**
 * Offline validation of rendered objects before anything is printed or sent: built-in kinds
 * against the official Kubernetes OpenAPI schemas (kubernetes-models' generated validators),
 * KAITO Workspaces against the Workspace CRD's v1beta1 openAPIV3Schema with ajv, made strict
 * (crd-schema.ts). No cluster is involved.
 *
 * Limits, stated in docs/kubernetes.md: kubernetes-models checks types, required fields and
 * enums but lets unknown fields through (tests cross-check every golden manifest with
 * `kubernetes-validate --strict`, which does not); CRD `x-kubernetes-validations` (CEL) rules
 * are not evaluated (the v1beta1 Workspace schema has none).
 */
import { createRequire } from 'node:module'
import type { ValidateFunction } from 'ajv'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { Volume } from 'kubernetes-models/v1/Volume'
import { InternalError } from '../errors.ts'
import { strictSchema } from './crd-schema.ts'
import { isDnsLabel, isDnsSubdomain } from './names.ts'
import workspaceSchema from './workspace-v1beta1.schema.json' with { type: 'json' }

type Validatable = { validate(): void }
type Ctor = new (data: never) => Validatable

/** The built-in kinds Headroom renders (and accepts in `submit -f`), by `apiVersion/kind`. */
const BUILT_IN: Record<string, Ctor> = {
  'v1/ConfigMap': ConfigMap as unknown as Ctor,
  'v1/Service': Service as unknown as Ctor,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as unknown as Ctor,
  'v1/Secret': Secret as unknown as Ctor,
  'batch/v1/Job': Job as unknown as Ctor,
  'apps/v1/Deployment': Deployment as unknown as Ctor,
}

let workspaceValidator: ValidateFunction | undefined

function validateWorkspaceSchema(): ValidateFunction {
  if (workspaceValidator) return workspaceValidator
  // ajv ships CommonJS with a default export; createRequire sidesteps the ESM interop shape.
  const Ajv = createRequire(import.meta.url)('ajv').default as typeof import('ajv').default
  // strict: false lets the x-kubernetes-* extension keywords through as annotations.
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false })
  workspaceValidator = ajv.compile(strictSchema(workspaceSchema as Record<string, unknown>))
  return workspaceValidator
}

/**
 * What is wrong with one manifest, as `Kind/name: path message` lines; empty when it is valid.
 * @example validateManifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 1 } }) // ['ConfigMap/x: ... must be string']
 */
export function validateManifest(obj: unknown): string[] {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return ['document: not a Kubernetes object (a map with apiVersion and kind)']
  const o = obj as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } }
  const id = `${String(o.kind)}/${String(o.metadata?.name ?? '?')}`
  const key = `${String(o.apiVersion)}/${String(o.kind)}`
  const out: string[] = []
  const name = o.metadata?.name
  if (typeof name !== 'string' || !isDnsSubdomain(name)) out.push(`${id}: metadata.name ${JSON.stringify(name)} is not a DNS-1123 name`)
  const ns = o.metadata?.namespace
  if (ns !== undefined && (typeof ns !== 'string' || !isDnsLabel(ns))) out.push(`${id}: metadata.namespace ${JSON.stringify(ns)} is not a DNS-1123 label`)
  if (key === 'kaito.sh/v1beta1/Workspace') {
    const validate = validateWorkspaceSchema()
    if (!validate(obj)) for (const e of validate.errors ?? []) out.push(`${id}: ${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`)
    // The CRD leaves volumeSource schemaless (preserve-unknown-fields); KAITO mounts it as a corev1 volume.
    const tuning = (obj as { tuning?: { input?: { volumeSource?: unknown }; output?: { volumeSource?: unknown } } }).tuning
    for (const [where, vs] of [['tuning.input.volumeSource', tuning?.input?.volumeSource], ['tuning.output.volumeSource', tuning?.output?.volumeSource]] as const) {
      if (vs !== undefined) out.push(...modelErrors(new Volume({ name: 'v', ...(vs as object) }), `${id}: ${where}`))
    }
    return out
  }
  const Model = BUILT_IN[key]
  if (!Model) return [...out, `${id}: apiVersion ${String(o.apiVersion)} kind ${String(o.kind)} is not one Headroom renders or validates`]
  return [...out, ...modelErrors(new Model(obj as never), id)]
}

function modelErrors(m: Validatable, id: string): string[] {
  try {
    m.validate()
    return []
  } catch (e) {
    const errors = (e as { errors?: { instancePath?: string; message?: string }[] }).errors
    if (errors?.length) return errors.map((x) => `${id}: ${x.instancePath || '/'} ${x.message ?? 'is invalid'}`)
    return [`${id}: ${e instanceof Error ? e.message : String(e)}`]
  }
}

/** Validates every rendered object; a problem is a bug in the renderer (inputs were checked first). */
export function assertValid(objects: readonly unknown[]): void {
  const problems = objects.flatMap((o) => validateManifest(o))
  if (problems.length) throw new InternalError(`a rendered manifest failed offline validation:\n${problems.join('\n')}`)
}
