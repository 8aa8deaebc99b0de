/**
 * Reading a tuning config file: a KAITO ConfigMap (`data["training_config.yaml"]`), the bare
 * training_config document, or a multi-document file that also holds Workspaces and other
 * objects. Pure: text in, units and issues out; `loadTuningConfig` is the only I/O.
 *
 * Never throws on input: YAML errors, invalid UTF-8, alias bombs and absurd nesting all come
 * back as issues with file:line:column.
 */
import {
  isMap,
  isScalar,
  LineCounter,
  parseAllDocuments,
  parseDocument,
  type Document,
  type Node,
  type Scalar,
} from 'yaml'
import { type Issue } from '../errors.ts'
import { MAX_CONFIG_BYTES, readBoundedFile } from '../files.ts'
import { messages } from './messages.ts'
import { directMapper, embeddedMapper, PositionIndex, type OffsetMapper, type Position } from './source.ts'
import { DEFAULT_TEMPLATES } from './templates.ts'
import type { TrainingConfig } from './schema.ts'
import { runRules, type Target, type TuningMethod } from './rules.ts'

/** More aliases than any real config uses; a billion-laughs document needs thousands. */
export const MAX_ALIAS_COUNT = 100
/** Deeper than any training_config (section > field > map > value); bounds recursion on fuzz. */
export const MAX_DEPTH = 32

// merge: KAITO's readers (go-yaml, PyYAML) both honour `<<` merge keys.
const YAML_OPTIONS = { prettyErrors: false, uniqueKeys: true, logLevel: 'error', strict: true, merge: true } as const

/** What a Workspace in the same file says about the tuning job. */
export type WorkspaceInfo = {
  name?: string
  preset?: string
  method?: string
  config?: string
  instanceType?: string
  /** Positions of `tuning.method`, `tuning.preset.name` and `resource.instanceType`. */
  at: { method?: Position; preset?: Position; instanceType?: Position; config?: Position }
}

/** One training_config found in the file (a file may hold several ConfigMaps). */
export type TuningUnit = {
  kind: 'configmap' | 'bare' | 'default-template'
  /** ConfigMap name, when there is one. */
  name?: string
  /** File the positions refer to (a virtual `kaito:<template>` for a default template). */
  file?: string
  /** The `training_config` map as written; undefined when the document could not be read. */
  raw: Record<string, unknown> | undefined
  /** The Workspace in the file that uses this config, if any. */
  workspace?: WorkspaceInfo
  /** Position of a dotted path inside training_config (`LoraConfig.r`). */
  locate: (path: string, at?: 'key' | 'value') => Position | undefined
  /** Where the unit itself starts (the training_config.yaml key or the training_config key). */
  at?: Position
}

/** The file, split into its tuning configs and the issues found while reading it. */
export type TuningFile = {
  units: TuningUnit[]
  workspaces: WorkspaceInfo[]
  issues: Issue[]
}

export type ParseOptions = { file?: string }

const ROOT = 'training_config'

/** Splits a file into tuning units. Structural issues only; content rules run on each unit. */
export function readTuningFile(input: string | Uint8Array, opts: ParseOptions = {}): TuningFile {
  const issues: Issue[] = []
  const file = opts.file
  try {
    const text = decode(input, file, issues)
    return { ...splitDocuments(text, file, issues), issues }
  } catch (err) {
    // A bug or a pathological input we did not foresee: still an issue, never a crash.
    issues.push({
      code: 'unreadable',
      path: ROOT,
      severity: 'error',
      file,
      message: `could not be read (${err instanceof Error ? err.message : String(err)}): check that it is a YAML file`,
    })
    return { units: [], workspaces: [], issues }
  }
}

function decode(input: string | Uint8Array, file: string | undefined, issues: Issue[]): string {
  let text: string
  if (typeof input === 'string') text = input
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input)
    } catch {
      text = new TextDecoder('utf-8').decode(input)
      const bad = text.indexOf('\uFFFD')
      const before = text.slice(0, Math.max(0, bad))
      const line = before.split('\n').length
      const column = bad - before.lastIndexOf('\n')
      issues.push({ code: 'invalid_utf8', path: ROOT, severity: 'error', file, line, column, message: messages.invalidUtf8() })
    }
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
}

type RawDoc = { doc: Document.Parsed; value: unknown }

function splitDocuments(text: string, file: string | undefined, issues: Issue[]): Omit<TuningFile, 'issues'> {
  const helm = maskHelm(text)
  const source = helm.text
  const lc = new LineCounter()
  const docs = parseAllDocuments(source, { ...YAML_OPTIONS, lineCounter: lc })
  if (helm.spans.length) {
    // One warning for the file: a chart has dozens of expressions, and each says the same.
    const first = helm.spans[0]
    const { line, col } = lc.linePos(first.start)
    const more = helm.spans.length - 1
    issues.push({
      code: 'helm_template',
      path: pathAt(docs, first.start) ?? 'document',
      severity: 'warning',
      file,
      line,
      column: col,
      message: `${messages.helmTemplate(text.slice(first.start, first.end))}${more ? ` (${more} more Helm expression${more === 1 ? '' : 's'} masked the same way)` : ''}`,
    })
  }
  const map = directMapper(lc)
  const units: TuningUnit[] = []
  const workspaces: WorkspaceInfo[] = []
  const list = Array.isArray(docs) ? docs : []
  const kinds: string[] = []
  list.forEach((doc) => {
    const errors = yamlIssues(doc, map, file, 'document')
    if (errors.length) {
      issues.push(...errors)
      return
    }
    const value = toJS(doc, map, file, 'document', issues)
    if (value === BOMB) return
    classify({ doc, value }, source, lc, file, issues, units, workspaces, kinds)
  })
  if (helm.spans.length) for (const unit of units) if (unit.raw) unit.raw = dropMasked(unit.raw) as Record<string, unknown>
  attachWorkspaces(units, workspaces, file, issues)
  if (!units.length && !issues.some((i) => i.severity !== 'warning') && !workspaces.some((w) => w.config)) {
    issues.push({
      code: 'no_training_config',
      path: ROOT,
      severity: 'error',
      file,
      line: 1,
      column: 1,
      message: messages.noTuningConfig(kinds.length ? `found ${kinds.join(', ')}` : 'the file is empty'),
    })
  }
  return { units, workspaces }
}

const BOMB = Symbol('alias bomb')

function toJS(doc: Document.Parsed, map: OffsetMapper, file: string | undefined, path: string, issues: Issue[]): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
  } catch (err) {
    const pos = map(0)
    if (err instanceof ReferenceError && /alias/i.test(err.message)) {
      issues.push({ code: 'yaml_alias_bomb', path, severity: 'error', file, ...pos, message: messages.aliasBomb(MAX_ALIAS_COUNT) })
    } else if (err instanceof RangeError) {
      issues.push({ code: 'too_deep', path, severity: 'error', file, ...pos, message: messages.tooDeep(MAX_DEPTH) })
    } else {
      issues.push({ code: 'yaml_syntax', path, severity: 'error', file, ...pos, message: messages.yamlSyntax(String((err as Error)?.message ?? err)) })
    }
    return BOMB
  }
}

function yamlIssues(doc: Document.Parsed, map: OffsetMapper, file: string | undefined, path: string): Issue[] {
  return doc.errors.map((e) => ({
    code: e.code === 'DUPLICATE_KEY' ? 'duplicate_key' : 'yaml_syntax',
    path,
    severity: 'error' as const,
    file,
    ...map(e.pos[0]),
    message: messages.yamlSyntax(firstLine(e.message)),
  }))
}

function firstLine(s: string): string {
  const line = s.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
  return line.length > 160 ? `${line.slice(0, 157)}...` : line
}

function kindOf(value: unknown): string {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const kind = (value as Record<string, unknown>).kind
    if (typeof kind === 'string') return kind
    return 'a map without kind'
  }
  if (Array.isArray(value)) return 'a list'
  return value === null || value === undefined ? 'an empty document' : `the scalar ${String(value).slice(0, 20)}`
}

function classify(
  { doc, value }: RawDoc,
  text: string,
  lc: LineCounter,
  file: string | undefined,
  issues: Issue[],
  units: TuningUnit[],
  workspaces: WorkspaceInfo[],
  kinds: string[],
): void {
  const map = directMapper(lc)
  const obj = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  kinds.push(kindOf(value))
  if (obj && ROOT in obj && obj.kind === undefined) {
    units.push(bareUnit(doc, obj, map, file, issues))
    return
  }
  if (obj?.kind === 'ConfigMap') {
    const data = obj.data as Record<string, unknown> | undefined
    const name = (obj.metadata as Record<string, unknown> | undefined)?.name
    const nameStr = typeof name === 'string' ? name : undefined
    if (data && typeof data === 'object' && 'training_config.yaml' in data) {
      units.push(configMapUnit(doc, data['training_config.yaml'], nameStr, text, lc, file, issues))
    } else if (data && typeof data === 'object' && 'inference_config.yaml' in data) {
      const node = doc.getIn(['data', 'inference_config.yaml'], true) as Node | undefined
      issues.push({ code: 'not_a_tuning_config', path: 'data.inference_config.yaml', severity: 'warning', file, ...(node?.range ? map(node.range[0]) : map(0)), message: messages.inferenceConfigMap() })
    }
    return
  }
  if (obj?.kind === 'Workspace') {
    const ws = workspaceInfo(doc, obj, map)
    if (ws) workspaces.push(ws)
  }
}

function bareUnit(doc: Document.Parsed, obj: Record<string, unknown>, map: OffsetMapper, file: string | undefined, issues: Issue[]): TuningUnit {
  const root = doc.contents as Node | null
  const index = new PositionIndex(root, map, MAX_DEPTH)
  const unit = makeUnit('bare', undefined, file, obj, index, ROOT, issues)
  for (const key of Object.keys(obj)) {
    if (key === ROOT) continue
    issues.push({ code: 'extra_top_level_key', path: key, severity: 'warning', file, ...(index.locate(key, 'key') ?? {}), message: messages.extraTopLevelKey() })
  }
  return unit
}

function configMapUnit(
  doc: Document.Parsed,
  data: unknown,
  name: string | undefined,
  text: string,
  lc: LineCounter,
  file: string | undefined,
  issues: Issue[],
): TuningUnit {
  const outerMap = directMapper(lc)
  const node = doc.getIn(['data', 'training_config.yaml'], true) as Node | undefined
  const at = node?.range ? outerMap(node.range[0]) : undefined
  const empty: TuningUnit = { kind: 'configmap', name, file, raw: undefined, locate: () => at, at }
  if (typeof data !== 'string' || !isScalar(node)) {
    issues.push({ code: 'invalid_type', path: 'data.training_config.yaml', severity: 'error', file, ...at, message: messages.dataNotString(data) })
    return empty
  }
  const innerLc = new LineCounter()
  // The outer masking already turned the block's template lines into text the inner parse
  // reads as comments or strings; a folded or quoted scalar still carries them raw.
  const inner = parseDocument(maskHelm(data).text, { ...YAML_OPTIONS, lineCounter: innerLc })
  const map = embeddedMapper(text, lc, node as Scalar, innerLc)
  const errors = yamlIssues(inner, map, file, 'data.training_config.yaml')
  if (errors.length) {
    issues.push(...errors)
    return empty
  }
  const value = toJS(inner, map, file, 'data.training_config.yaml', issues)
  if (value === BOMB) return empty
  const index = new PositionIndex(inner.contents as Node | null, map, MAX_DEPTH)
  const obj = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {}
  const unit = makeUnit('configmap', name, file, obj, index, ROOT, issues, at)
  for (const key of Object.keys(obj)) {
    if (key === ROOT) continue
    issues.push({ code: 'extra_top_level_key', path: key, severity: 'warning', file, ...(index.locate(key, 'key') ?? at), message: messages.extraTopLevelKey() })
  }
  return unit
}

/** A unit whose paths are relative to training_config (`LoraConfig.r`, not `training_config.LoraConfig.r`). */
function makeUnit(
  kind: TuningUnit['kind'],
  name: string | undefined,
  file: string | undefined,
  doc: Record<string, unknown>,
  index: PositionIndex,
  root: string,
  issues: Issue[],
  fallback?: Position,
): TuningUnit {
  const rootAt = index.locate(root, 'key') ?? fallback
  const locate = (path: string, at: 'key' | 'value' = 'value') =>
    (path === root ? index.locate(root, at) : index.locate(`${root}.${path}`, at)) ?? rootAt
  const raw = doc[root]
  if (index.maxDepth > MAX_DEPTH) {
    issues.push({ code: 'too_deep', path: root, severity: 'error', file, ...rootAt, message: messages.tooDeep(MAX_DEPTH) })
    return { kind, name, file, raw: undefined, locate, at: rootAt }
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    issues.push({ code: 'missing_training_config', path: root, severity: 'error', file, ...(index.locate(root) ?? rootAt ?? { line: 1, column: 1 }), message: messages.missingTrainingConfig(raw) })
    return { kind, name, file, raw: undefined, locate, at: rootAt }
  }
  return { kind, name, file, raw: raw as Record<string, unknown>, locate, at: rootAt }
}

function workspaceInfo(doc: Document.Parsed, obj: Record<string, unknown>, map: OffsetMapper): WorkspaceInfo | undefined {
  const tuning = obj.tuning as Record<string, unknown> | undefined
  if (!tuning || typeof tuning !== 'object') return undefined
  const resource = (obj.resource ?? {}) as Record<string, unknown>
  const preset = (tuning.preset ?? {}) as Record<string, unknown>
  const pos = (path: string[]) => {
    const n = doc.getIn(path, true) as Node | undefined
    return n?.range ? map(n.range[0]) : undefined
  }
  const s = (v: unknown) => (typeof v === 'string' && v ? v : undefined)
  return {
    name: s((obj.metadata as Record<string, unknown> | undefined)?.name),
    preset: s(preset.name),
    method: s(tuning.method),
    config: s(tuning.config),
    instanceType: s(resource.instanceType),
    at: {
      method: pos(['tuning', 'method']),
      preset: pos(['tuning', 'preset', 'name']),
      instanceType: pos(['resource', 'instanceType']),
      config: pos(['tuning', 'config']),
    },
  }
}

/**
 * Pairs each Workspace with the ConfigMap it names. A Workspace that names no config gets
 * KAITO's default template for its method, as the controller copies it in.
 */
function attachWorkspaces(units: TuningUnit[], workspaces: WorkspaceInfo[], file: string | undefined, issues: Issue[]): void {
  for (const ws of workspaces) {
    const method = ws.method?.toLowerCase()
    const wanted = ws.config ?? (method === 'lora' || method === 'qlora' ? DEFAULT_TEMPLATES[method].name : undefined)
    const named = units.find((u) => u.name !== undefined && u.name === wanted)
    if (named) {
      named.workspace = ws
      continue
    }
    if (units.length === 1 && workspaces.length === 1 && !units[0].name) {
      units[0].workspace = ws
      continue
    }
    if (!ws.config && (method === 'lora' || method === 'qlora')) {
      const template = DEFAULT_TEMPLATES[method]
      const virtual = `kaito:${template.name}`
      const sub = readTuningFile(template.text, { file: virtual })
      for (const u of sub.units) {
        u.kind = 'default-template'
        u.workspace = ws
        units.push(u)
      }
      issues.push({ code: 'default_template', path: 'tuning.config', severity: 'warning', file, ...(ws.at.method ?? {}), message: messages.defaultTemplate(template.name, ws.name ?? '') })
    } else if (ws.config && DEFAULT_TEMPLATES_BY_NAME[ws.config] && !units.length) {
      const template = DEFAULT_TEMPLATES_BY_NAME[ws.config]
      const sub = readTuningFile(template.text, { file: `kaito:${template.name}` })
      for (const u of sub.units) {
        u.kind = 'default-template'
        u.workspace = ws
        units.push(u)
      }
      issues.push({ code: 'default_template', path: 'tuning.config', severity: 'warning', file, ...(ws.at.config ?? {}), message: messages.defaultTemplate(template.name, ws.name ?? '') })
    } else if (ws.config) {
      issues.push({ code: 'config_not_in_file', path: 'tuning.config', severity: 'warning', file, ...(ws.at.config ?? {}), message: messages.configMapElsewhere(ws.config) })
    }
  }
}

const DEFAULT_TEMPLATES_BY_NAME: Record<string, { name: string; text: string }> = Object.fromEntries(
  Object.values(DEFAULT_TEMPLATES).map((t) => [t.name, t]),
)

type Span = { start: number; end: number }

const HELM_LINE = /^(\s*)((?:\{\{.*?\}\}\s*)+)$/
const HELM_VALUE = /^(\s*(?:-\s+)*(?:[^\s#'"{][^:#]*:\s+|-\s+)?)(\{\{.*\}\}.*?)(\s*(?:#.*)?)$/

/**
 * Masks Helm template syntax so a chart's ConfigMap reads as YAML: a line holding only
 * template actions (`{{- if .Values.x }}`, `{{- end }}`) becomes a comment, and a value that
 * starts with an expression (`namespace: {{ .Release.Namespace }}`) becomes a quoted string.
 * Every replacement keeps the text's length and line breaks, so positions stay put. Pure and
 * lexical: it runs before parsing, since block-level actions do not parse at all.
 * @example maskHelm('{{- if .Values.on }}\nkind: ConfigMap\n{{- end }}\n').spans.length // 2
 */
export function maskHelm(text: string): { text: string; spans: Span[] } {
  if (!text.includes('{{')) return { text, spans: [] }
  const spans: Span[] = []
  let out = ''
  let at = 0
  for (const raw of text.split('\n')) {
    const cr = raw.endsWith('\r') ? '\r' : ''
    const line = cr ? raw.slice(0, -1) : raw
    let masked = line
    const whole = HELM_LINE.exec(line)
    if (whole) {
      const start = whole[1].length
      spans.push({ start: at + start, end: at + line.length })
      masked = `${whole[1]}#${line.slice(start + 1)}`
    } else if (line.includes('{{')) {
      const value = HELM_VALUE.exec(line)
      if (value && value[2].includes('}}')) {
        const start = value[1].length
        const body = value[2]
        spans.push({ start: at + start, end: at + start + body.indexOf('}}') + 2 })
        // Same length: the first and last characters become the quotes.
        masked = `${value[1]}'${body.slice(1, -1).replace(/'/g, '"')}'${value[3]}`
      }
    }
    out += masked + cr + '\n'
    at += raw.length + 1
  }
  return { text: out.slice(0, -1), spans }
}

/** A value maskHelm quoted: `{{ .Values.r }}` reads back as the string "{ .Values.r }". */
const MASKED_VALUE = /^\{[-\s].*\}/s

/**
 * The config without the values Helm fills in at render time: a templated field is unknown
 * until `helm template`, so it is checked as unset (the helm_template warning says so)
 * rather than as the string the mask left.
 */
function dropMasked(value: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.filter((v) => !(typeof v === 'string' && MASKED_VALUE.test(v))).map((v) => dropMasked(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) if (!(typeof v === 'string' && MASKED_VALUE.test(v))) out[k] = dropMasked(v, depth + 1)
  return out
}

/** The dotted path of the map value that starts at `offset`, if any. */
function pathAt(docs: ReturnType<typeof parseAllDocuments>, offset: number): string | undefined {
  const list = Array.isArray(docs) ? docs : []
  for (const doc of list) {
    let found: string | undefined
    const visit = (node: unknown, path: string, depth: number) => {
      if (found !== undefined || depth > MAX_DEPTH || !isMap(node)) return
      for (const pair of node.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : ''
        const p = path ? `${path}.${k}` : k
        const v = pair.value as Node | null
        if (v?.range && v.range[0] === offset) found = p
        else if (v) visit(v, p, depth + 1)
      }
    }
    visit(doc.contents, '', 0)
    if (found !== undefined) return found
  }
  return undefined
}

/** The parsed training_config and everything wrong with it, all at once. */
export type ParseResult = {
  /** The first training_config in the file when the file has no errors, else null. */
  value: TrainingConfig | null
  /** Errors, each with file:line:column where the source has one. */
  issues: Issue[]
  warnings: Issue[]
  /** Every tuning config in the file, as read. */
  units: TuningUnit[]
  workspaces: WorkspaceInfo[]
}

export type ParseTuningOptions = ParseOptions & { target?: Target; method?: TuningMethod }

/** Adds file:line:column to issues whose path is inside the unit's training_config. */
export function locateIssues(unit: TuningUnit, list: Issue[]): Issue[] {
  return list.map((i) => {
    if (i.line !== undefined) return i
    const at = unit.locate(i.path, KEY_CODES.has(i.code) ? 'key' : 'value')
    return { ...i, file: unit.file, ...(at ? { line: at.line, column: at.column } : {}) }
  })
}

const KEY_CODES = new Set(['unknown_key', 'unknown_section', 'renamed_key', 'kaito_unsupported_field', 'deprecated_field'])

/** The Workspace's method when KAITO accepts it (case-insensitively), else an issue. */
export function workspaceMethod(ws: WorkspaceInfo | undefined, file: string | undefined, issues: Issue[]): TuningMethod | undefined {
  if (!ws?.method) return undefined
  const m = ws.method.toLowerCase()
  if (m === 'lora' || m === 'qlora') return m
  issues.push({ code: 'invalid_value', path: 'tuning.method', severity: 'error', file, ...(ws.at.method ?? {}), message: messages.methodInvalid(ws.method) })
  return undefined
}

/** Splits issues by severity, keeping file order. */
export function bySeverity(all: Issue[]): { issues: Issue[]; warnings: Issue[] } {
  return { issues: all.filter((i) => i.severity !== 'warning'), warnings: all.filter((i) => i.severity === 'warning') }
}

/**
 * Reads a tuning config from YAML (a ConfigMap, a bare training_config document, or a
 * multi-document file) and runs every rule that needs no model or GPU. Never throws.
 * @example parseTuningConfig(readFileSync('lora.yaml'), { file: 'lora.yaml' }).issues // []
 */
export function parseTuningConfig(text: string | Uint8Array, opts: ParseTuningOptions = {}): ParseResult {
  const tf = readTuningFile(text, opts)
  const all = [...tf.issues]
  for (const unit of tf.units) {
    if (!unit.raw) continue
    const method = opts.method ?? workspaceMethod(unit.workspace, opts.file, all)
    all.push(...locateIssues(unit, runRules({ config: unit.raw, method, target: opts.target ?? 'local' })))
  }
  const { issues, warnings } = bySeverity(all)
  const first = tf.units.find((u) => u.raw)
  return { value: !issues.length && first?.raw ? (first.raw as TrainingConfig) : null, issues, warnings, units: tf.units, workspaces: tf.workspaces }
}

/**
 * Reads and parses a tuning config file; ExitError (exit 2) when the file cannot be read.
 * @example const { value, issues } = await loadTuningConfig('examples/qlora.yaml')
 */
export async function loadTuningConfig(path: string, opts: Omit<ParseTuningOptions, 'file'> = {}): Promise<ParseResult> {
  return parseTuningConfig(await readConfigFile(path), { ...opts, file: path })
}

/**
 * The bytes of a config file, at most MAX_CONFIG_BYTES of a regular file; one-line ExitError
 * naming the path otherwise (exit 2 when it does not exist, 1 for a FIFO, device, directory
 * or oversized file).
 */
export async function readConfigFile(path: string, flag = 'file'): Promise<Uint8Array> {
  return readBoundedFile(path, { maxBytes: MAX_CONFIG_BYTES, flag, expect: 'a ConfigMap or training_config YAML file' })
}
