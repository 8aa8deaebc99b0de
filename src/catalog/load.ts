/**
 * Resolves what the user typed after --model into a ModelArch: a catalog id or hub id that
 * the catalog knows (no I/O), a config.json file or a model directory holding one, or a hub
 * id fetched from huggingface.co. The only file in catalog/ that reads disk or network.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ExitError } from '../errors.ts'
import { MAX_MODEL_CONFIG_BYTES, readBoundedFile } from '../files.ts'
import { archFromHfConfig } from './hf-config.ts'
import { catalogNames, findModelSync, unknownModelError } from './models.ts'
import { didYouMean } from './suggest.ts'
import type { ModelArch } from './types.ts'

export type LoadModelOptions = {
  /** Replaces the global fetch (tests pass one that fails to prove no request is made). */
  fetch?: typeof fetch
  /** How long to wait for the hub, milliseconds. */
  timeoutMs?: number
  /** Hub base URL; defaults to $HF_ENDPOINT or https://huggingface.co, as huggingface_hub does. */
  endpoint?: string
  /** Bearer token for gated repositories; defaults to $HF_TOKEN, as huggingface_hub does. */
  token?: string
}

// Long enough for a cold TLS handshake to the hub, short enough that an offline `plan` fails fast.
const DEFAULT_TIMEOUT_MS = 5000

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/

/**
 * Loads a model by catalog id, hub id, config.json path or model directory.
 * @example await loadModel('microsoft/Phi-3-mini-128k-instruct') // catalog hit, no network
 * @example await loadModel('./my-model/config.json')
 */
export async function loadModel(ref: string, opts: LoadModelOptions = {}): Promise<ModelArch> {
  const trimmed = ref.trim()
  if (trimmed === '') throw new ExitError('the model is empty: give a catalog id, a config.json path or a hub id', { path: 'model' })
  const known = findModelSync(trimmed)
  if (known) return known

  const kind = await pathKind(trimmed)
  if (kind === 'file') return archFromFile(trimmed)
  if (kind === 'dir') return archFromFile(join(trimmed, 'config.json'), trimmed)
  if (looksLikePath(trimmed)) {
    throw new ExitError(`model path "${trimmed}" does not exist: give a config.json file or a directory holding one`, {
      path: 'model',
    })
  }
  if (HUB_ID.test(trimmed)) return archFromHub(trimmed, opts)
  throw unknownModelError(trimmed)
}

async function pathKind(p: string): Promise<'file' | 'dir' | undefined> {
  try {
    const s = await stat(p)
    return s.isDirectory() ? 'dir' : 'file'
  } catch {
    return undefined
  }
}

function looksLikePath(ref: string): boolean {
  return /^(\.{1,2}\/|\/|~)/.test(ref) || ref.endsWith('.json') || ref.includes('\\')
}

async function archFromFile(file: string, dir?: string): Promise<ModelArch> {
  if (dir && (await pathKind(file)) === undefined) {
    throw new ExitError(`model directory "${dir}" has no config.json: pass the directory of a Hugging Face checkpoint`, {
      path: 'model',
    })
  }
  const bytes = await readBoundedFile(file, { maxBytes: MAX_MODEL_CONFIG_BYTES, flag: 'model', expect: 'a Hugging Face config.json or a model directory' })
  return archFromText(bytes.toString('utf8'), file, file)
}

/**
 * Parses config.json text. The error gives only a line and column: JSON.parse's own message
 * quotes the text, and a server must never echo a file's bytes back to a client.
 */
function archFromText(text: string, where: string, name: string): ModelArch {
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch (err) {
    throw new ExitError(`${where} is not valid JSON: ${jsonErrorAt(text, (err as Error).message)}: give a Hugging Face config.json`, { path: 'model' })
  }
  return archFromHfConfig(config, name)
}

/** Where the syntax error is, from V8's "... at position N" when it says so; never the text itself. */
function jsonErrorAt(text: string, message: string): string {
  if (text.trim() === '') return 'the file is empty'
  const m = /at position (\d+)/.exec(message)
  if (!m) return /end of (JSON|data) input/i.test(message) ? 'it ends too early' : 'syntax error'
  const offset = Number(m[1])
  const before = text.slice(0, offset)
  return `syntax error at line ${before.split('\n').length}, column ${offset - before.lastIndexOf('\n')}`
}

async function archFromHub(id: string, opts: LoadModelOptions): Promise<ModelArch> {
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '')
  const url = `${endpoint}/${id}/resolve/main/config.json`
  const token = opts.token ?? process.env.HF_TOKEN
  const doFetch = opts.fetch ?? fetch
  let res: Response
  try {
    res = await doFetch(url, {
      signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    })
  } catch (err) {
    const why = (err as Error).name === 'TimeoutError' ? 'timed out' : (err as Error).message
    throw new ExitError(
      `model "${id}" is not in the catalog and the Hugging Face hub can't be reached (${why}): pass a local config.json path instead, or a catalog id`,
      { path: 'model', code: 'unknown_model' },
    )
  }
  if (res.status === 401 || res.status === 403) {
    throw new ExitError(
      `hub model "${id}" is gated or private (HTTP ${res.status}): set HF_TOKEN, or download its config.json and pass that path`,
      { path: 'model' },
    )
  }
  if (!res.ok) {
    throw new ExitError(
      `hub model "${id}" has no config.json (HTTP ${res.status})${didYouMean(id, catalogNames())}`,
      { path: 'model' },
    )
  }
  const arch = archFromText(await boundedText(res, id), `config.json of ${id}`, id)
  return { ...arch, hfId: id }
}

/** The response body, refusing more than MAX_MODEL_CONFIG_BYTES (a hub answer is no more trusted than a file). */
async function boundedText(res: Response, id: string): Promise<string> {
  const tooBig = () =>
    new ExitError(`config.json of ${id} is over the ${MAX_MODEL_CONFIG_BYTES / 1024 / 1024} MiB limit: pass a local config.json instead`, { path: 'model', exitCode: 1 })
  if (Number(res.headers.get('content-length') ?? 0) > MAX_MODEL_CONFIG_BYTES) throw tooBig()
  if (!res.body) return ''
  const chunks: Uint8Array[] = []
  let total = 0
  const reader = res.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > MAX_MODEL_CONFIG_BYTES) {
      await reader.cancel()
      throw tooBig()
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}
