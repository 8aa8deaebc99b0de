/**
 * The seed's LoraConfig (KAITO's Phi-3 blog and examples/fine-tuning ConfigMap): r 8, alpha 8,
 * dropout 0, target_modules q_proj, k_proj, v_proj, o_proj. Phi-3 fuses q, k and v into
 * qkv_proj, so three of the four names match nothing.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { findModelSync } from '../../src/catalog/index.ts'
import { suggestTargets } from '../../src/config/rules.ts'
import { LLAMA_8B, PHI3_MINI } from './arch-fixtures.ts'
import { bare, ruleIssues } from './helpers.ts'

const SEED = bare(
  [
    '  LoraConfig:',
    '    r: 8',
    '    lora_alpha: 8',
    '    lora_dropout: 0.0',
    '    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]',
  ].join('\n'),
)

describe('target_modules against the model', () => {
  for (const [label, model] of [
    ['hand-made Phi-3 fixture', PHI3_MINI],
    ['catalog phi-3-mini-128k-instruct', findModelSync('phi-3-mini-128k-instruct')!],
  ] as const) {
    test(`the seed's LoraConfig on ${label} warns q_proj, k_proj, v_proj match nothing and suggests qkv_proj`, () => {
      const { issues, warnings } = ruleIssues(SEED, { model, file: 'seed.yaml' })
      assert.deepEqual(issues, [])
      const w = warnings.find((i) => i.code === 'target_modules_unmatched')
      assert.ok(w, JSON.stringify(warnings))
      assert.equal(w.path, 'LoraConfig.target_modules')
      assert.equal(w.severity, 'warning')
      assert.equal(w.line, 6)
      assert.match(w.message, /^q_proj, k_proj and v_proj match nothing in phi-3-mini-128k-instruct/)
      assert.match(w.message, /use qkv_proj/)
      assert.doesNotMatch(w.message.split('(')[0], /o_proj/, 'o_proj exists in Phi-3 and is not reported')
    })
  }

  test('the KAITO example ConfigMap file gives the same warning at the target_modules line', () => {
    const path = fileURLToPath(new URL('../fixtures/kaito/kaito_configmap_tuning_phi_3.yaml', import.meta.url))
    const text = readFileSync(path, 'utf8')
    const { issues, warnings } = ruleIssues(text, { model: PHI3_MINI, method: 'qlora', file: 'phi3.yaml' })
    assert.deepEqual(issues, [])
    const w = warnings.find((i) => i.code === 'target_modules_unmatched')
    assert.ok(w)
    const line = text.split('\n').findIndex((l) => l.includes('target_modules:')) + 1
    assert.equal(w.line, line)
  })

  test('the same names on Llama match everything: no issue', () => {
    const { issues, warnings } = ruleIssues(SEED, { model: LLAMA_8B })
    assert.deepEqual([...issues, ...warnings], [])
  })

  test('fused names on Llama suggest the split ones', () => {
    const { issues } = ruleIssues(bare('  LoraConfig:\n    target_modules: [qkv_proj, gate_up_proj]'), { model: LLAMA_8B })
    assert.equal(issues.length, 1)
    assert.match(issues[0].message, /use q_proj, k_proj, v_proj, gate_proj and up_proj/)
  })

  test('a typo is suggested by edit distance', () => {
    assert.deepEqual(suggestTargets(['down_prj'], ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj']), ['down_proj'])
  })

  test('all-linear, a matching regex and dotted names are accepted', () => {
    for (const t of ['"all-linear"', '".*(qkv|o)_proj"', '["self_attn.qkv_proj", "mlp.down_proj"]']) {
      const { issues, warnings } = ruleIssues(bare(`  LoraConfig:\n    target_modules: ${t}`), { model: PHI3_MINI })
      assert.deepEqual([...issues, ...warnings], [], t)
    }
  })

  test("unset targets on a KAITO cluster: phi-3's DEFAULT_TARGET_MODULES mostly miss", () => {
    const { warnings } = ruleIssues(bare('  LoraConfig:\n    r: 8'), { model: PHI3_MINI, target: 'cluster' })
    const w = warnings.find((i) => i.code === 'target_modules_unmatched')
    assert.ok(w)
    assert.match(w.message, /only o_proj and down_proj get adapters/)
    assert.match(w.message, /target_modules: \[qkv_proj, gate_up_proj, o_proj, down_proj\]/)
  })
})
