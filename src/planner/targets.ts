/**
 * peft's target_modules matching, against the model's real Linear names. A name matches a
 * module when it equals the module's leaf name (peft `check_target_module_exists`: key ==
 * target or key.endswith("." + target)); `all-linear` is every Linear but the output head
 * (peft `_maybe_include_all_linear_layers`).
 */
import { fieldSetting, type FieldNames } from './fields.ts'
import type { ModelShape, RoledLinear } from './shape.ts'

export type TargetMatch = {
  /** Matched decoder-block Linears, in forward order. */
  modules: RoledLinear[]
  /** Leaf names of the matched block Linears. */
  moduleNames: ReadonlySet<string>
  /** lm_head was named explicitly (peft can adapt it; all-linear leaves it out). */
  lmHead: boolean
  matched: string[]
  unmatched: string[]
}

const cache = new WeakMap<ModelShape, Map<string, TargetMatch>>()
// Searches pass the same targets array thousands of times; remember it by identity (callers do not mutate it).
const byArray = new WeakMap<string[], { shape: ModelShape; match: TargetMatch }>()

/** Which requested targets exist in the model. @example matchTargets(shape, ['q_proj','o_proj']).unmatched */
export function matchTargets(shape: ModelShape, targets: string[] | 'all-linear'): TargetMatch {
  if (targets !== 'all-linear') {
    const hit = byArray.get(targets)
    if (hit && hit.shape === shape) return hit.match
  }
  const key = targets === 'all-linear' ? 'all-linear' : targets.join(',')
  let byKey = cache.get(shape)
  if (!byKey) {
    byKey = new Map()
    cache.set(shape, byKey)
  }
  let match = byKey.get(key)
  if (!match) {
    match = computeMatch(shape, targets)
    byKey.set(key, match)
  }
  if (targets !== 'all-linear') byArray.set(targets, { shape, match })
  return match
}

function computeMatch(shape: ModelShape, targets: string[] | 'all-linear'): TargetMatch {
  if (targets === 'all-linear') {
    const names = shape.linears.map((m) => m.name)
    return { modules: shape.linears, moduleNames: new Set(names), lmHead: false, matched: names, unmatched: [] }
  }
  const wanted = [...new Set(targets.map((t) => t.trim()).filter((t) => t.length > 0))]
  const leaf = (t: string) => t.slice(t.lastIndexOf('.') + 1)
  const names = new Set(wanted.map(leaf))
  const modules = shape.linears.filter((m) => names.has(m.name))
  const lmHead = names.has('lm_head')
  const known = new Set([...shape.linears.map((m) => m.name), 'lm_head'])
  return {
    modules,
    moduleNames: new Set(modules.map((m) => m.name)),
    lmHead,
    matched: wanted.filter((t) => known.has(leaf(t))),
    unmatched: wanted.filter((t) => !known.has(leaf(t))),
  }
}

/**
 * Says why targets matched nothing and what the model calls its Linears, e.g. that Phi-3
 * fuses attention into qkv_proj.
 */
export function unmatchedMessage(shape: ModelShape, unmatched: string[], modelName: string, naming: FieldNames = 'fields'): string {
  const names = shape.linears.map((m) => m.name)
  const has = (n: string) => names.includes(n)
  const hints: string[] = []
  if (has('qkv_proj') && unmatched.some((t) => /^(q|k|v)_proj$/.test(t))) {
    hints.push('it fuses q, k and v into qkv_proj')
  }
  if (has('gate_up_proj') && unmatched.some((t) => /^(gate|up)_proj$/.test(t))) {
    hints.push('gate and up into gate_up_proj')
  }
  const why = hints.length > 0 ? ` (${hints.join(', ')})` : ''
  const list = unmatched.join(', ')
  const verb = unmatched.length === 1 ? 'matches' : 'match'
  return (
    `${list} ${verb} no module of ${modelName}${why}; its Linear modules are ${names.join(', ')}: ` +
    `use ${fieldSetting('targets', suggestTargets(shape, unmatched), naming)} or ${fieldSetting('targets', 'all-linear', naming)}`
  )
}

function suggestTargets(shape: ModelShape, unmatched: string[]): string {
  const names = shape.linears.map((m) => m.name)
  const attn = unmatched.some((t) => /^(q|k|v|o)_proj$/.test(t))
  const pick = attn ? shape.linears.filter((m) => m.role === 'attn-in' || m.role === 'attn-out') : shape.linears
  return (pick.length > 0 ? pick.map((m) => m.name) : names).join(',')
}
