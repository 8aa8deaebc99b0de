/**
 * Which server files an HTTP client may name. A client names models from the catalog, hub
 * ids, URLs, or files under the directories the operator allowed (`headroom server
 * --allow-path DIR`, default the runs and data directories). Any other path is refused with a
 * 403 before anything opens it, so no answer can carry another file's bytes.
 */
import { realpathSync, statSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findModelSync } from '../catalog/index.ts'
import { httpError } from './http-error.ts'

export type PathPolicy = {
  /** Allowed directories, absolute and resolved through symlinks. */
  readonly roots: readonly string[]
}

/** Hub ids as huggingface_hub accepts them: `org/name`. */
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/

/**
 * The policy for these directories (relative ones against the server's working directory).
 * @example pathPolicy(['runs', 'examples/data'])
 */
export function pathPolicy(dirs: readonly string[]): PathPolicy {
  return { roots: [...new Set(dirs.map((d) => realOrResolved(resolve(d))))] }
}

function realOrResolved(abs: string): string {
  // A root that does not exist yet (runs/ before the first run) is kept as written.
  const near = nearestExisting(abs)
  try {
    return join(realpathSync(near), abs.slice(near.length))
  } catch {
    return abs
  }
}

function nearestExisting(abs: string): string {
  let p = abs
  for (;;) {
    try {
      statSync(p)
      return p
    } catch {
      const up = dirname(p)
      if (up === p) return p
      p = up
    }
  }
}

function exists(abs: string): boolean {
  try {
    statSync(abs)
    return true
  } catch {
    return false
  }
}

function inside(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep)
}

/** True when `abs` (and wherever its symlinks lead) lies under an allowed root. */
export function allowed(policy: PathPolicy, abs: string): boolean {
  return policy.roots.some((root) => inside(realOrResolved(abs), root))
}

function forbidden(field: string, value: string): Error {
  return httpError(
    403,
    'forbidden_path',
    field,
    `${JSON.stringify(value.length > 200 ? `${value.slice(0, 197)}...` : value)} is a server path outside the directories this server allows: name a catalog model, a hub id or a URL, or a file under a directory the server's operator allowed`,
  )
}

function looksLikePath(ref: string): boolean {
  return isAbsolute(ref) || /^(\.{1,2}([/\\]|$)|~)/.test(ref) || ref.includes('\\') || /\.(json|jsonl|ya?ml|csv|parquet|txt)$/i.test(ref)
}

/**
 * Checks a model reference: a catalog id or a hub id passes; anything that names a local path
 * (looks like one, or exists relative to the server) must lie under an allowed root.
 * Throws a 403 HttpError otherwise; never opens the file.
 * @example checkModelRef(policy, 'model', 'phi-3-mini-128k-instruct') // ok
 */
export function checkModelRef(policy: PathPolicy, field: string, ref: string): void {
  const trimmed = ref.trim()
  if (findModelSync(trimmed)) return
  const abs = resolve(trimmed)
  if (!looksLikePath(trimmed) && HUB_ID.test(trimmed) && !exists(abs)) return
  if (!looksLikePath(trimmed) && !trimmed.includes('/') && !exists(abs)) return // an unknown name: the loader says so
  if (!allowed(policy, abs)) throw forbidden(field, ref)
}

/**
 * Checks a file or dataset location: http(s) URLs pass; file: URLs and paths must lie under
 * an allowed root.
 * @example checkFileRef(policy, 'data', 'https://example.com/train.jsonl') // ok
 */
export function checkFileRef(policy: PathPolicy, field: string, ref: string): void {
  let abs: string
  if (/^https?:\/\//i.test(ref)) return
  if (/^file:/i.test(ref)) {
    try {
      abs = fileURLToPath(ref)
    } catch {
      throw forbidden(field, ref)
    }
  } else abs = resolve(ref)
  if (!allowed(policy, abs)) throw forbidden(field, ref)
}

/**
 * Checks the paths a tuning config's text names for the trainer: the model, the dataset
 * (and the /mnt path KAITO joins it under) and a chat template file.
 */
export function checkConfigRefs(policy: PathPolicy, sections: Record<string, unknown> | undefined, prefix = 'config'): void {
  if (!sections) return
  const section = (name: string) => {
    const s = sections[name]
    return s && typeof s === 'object' && !Array.isArray(s) ? (s as Record<string, unknown>) : {}
  }
  const model = section('ModelConfig').pretrained_model_name_or_path
  if (typeof model === 'string' && model) checkModelRef(policy, `${prefix}.ModelConfig.pretrained_model_name_or_path`, model)
  const template = section('ModelConfig').chat_template
  // The trainer reads chat_template as a file unless it holds {, } or a newline (KAITO's rule).
  if (typeof template === 'string' && template && !/[{}\n]/.test(template)) checkFileRef(policy, `${prefix}.ModelConfig.chat_template`, template)
  const data = section('DatasetConfig').dataset_path
  if (typeof data === 'string' && data) {
    checkFileRef(policy, `${prefix}.DatasetConfig.dataset_path`, data)
    const underMnt = join('/mnt', data.replace(/^\/+|\/+$/g, ''))
    if (!/^[a-z]+:/i.test(data) && exists(underMnt)) checkFileRef(policy, `${prefix}.DatasetConfig.dataset_path`, underMnt)
  }
}
