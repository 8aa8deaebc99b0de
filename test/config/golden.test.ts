/**
 * Golden files: KAITO's own ConfigMaps and fine-tuning examples (v0.12.0, test/fixtures/kaito)
 * pass check, warnings allowed, both locally and as rendered for a KAITO cluster.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parseTuningConfig } from '../../src/config/parse.ts'
import { LORA_PARAMS_TEMPLATE, QLORA_PARAMS_TEMPLATE } from '../../src/config/templates.ts'

const dir = fileURLToPath(new URL('../fixtures/kaito/', import.meta.url))
const tuningFiles = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'inference-params.yaml')

describe('KAITO golden files', () => {
  test('the fixtures are all there', () => {
    assert.equal(tuningFiles.length, 7)
  })
  for (const f of tuningFiles) {
    for (const target of ['local', 'cluster'] as const) {
      test(`${f} passes (${target})`, () => {
        const r = parseTuningConfig(readFileSync(dir + f), { file: f, target })
        assert.deepEqual(r.issues, [], JSON.stringify(r.issues))
      })
    }
  }

  test('the qlora template reads as written', () => {
    const r = parseTuningConfig(readFileSync(`${dir}qlora-params.yaml`), { file: 'qlora-params.yaml', method: 'qlora', target: 'cluster' })
    assert.deepEqual(r.issues, [])
    assert.deepEqual(r.value?.QuantizationConfig, { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_compute_dtype: 'bfloat16', bnb_4bit_use_double_quant: true })
    assert.equal(r.value?.TrainingArguments?.per_device_train_batch_size, 1)
    assert.equal(r.units[0].name, 'qlora-params-template')
    // The Helm namespace is tolerated, with a warning at its position.
    const helm = r.warnings.find((w) => w.code === 'helm_template')
    assert.ok(helm)
    assert.equal(helm.path, 'metadata.namespace')
    assert.deepEqual([helm.line, helm.column], [5, 14])
  })

  test('the lora template fails for qlora and the qlora template fails for lora (KAITO webhook)', () => {
    const lora = parseTuningConfig(readFileSync(`${dir}lora-params.yaml`), { method: 'qlora' })
    assert.deepEqual(lora.issues.map((i) => i.code), ['qlora_needs_quantization'])
    const qlora = parseTuningConfig(readFileSync(`${dir}qlora-params.yaml`), { method: 'lora' })
    assert.deepEqual(qlora.issues.map((i) => `${i.code} ${i.path}`), ['lora_forbids_quantization QuantizationConfig.load_in_4bit'])
  })

  test('embedded templates are byte-for-byte the fixtures', () => {
    assert.equal(LORA_PARAMS_TEMPLATE, readFileSync(`${dir}lora-params.yaml`, 'utf8'))
    assert.equal(QLORA_PARAMS_TEMPLATE, readFileSync(`${dir}qlora-params.yaml`, 'utf8'))
  })

  test('a Workspace that names no config is checked against the default template of its method', () => {
    const r = parseTuningConfig(readFileSync(`${dir}kaito_workspace_tuning_phi_3.yaml`), { file: 'ws.yaml' })
    assert.equal(r.units.length, 1)
    assert.equal(r.units[0].kind, 'default-template')
    assert.equal(r.units[0].workspace?.preset, 'phi-3-mini-128k-instruct')
    assert.equal(r.units[0].workspace?.instanceType, 'Standard_NC24ads_A100_v4')
    assert.ok(r.warnings.some((w) => w.code === 'default_template' && w.path === 'tuning.config'))
  })

  test('a Workspace that names a ConfigMap kept elsewhere is a warning, not a failure', () => {
    const r = parseTuningConfig(readFileSync(`${dir}kaito_workspace_tuning_falcon_7b_oai.yaml`), { file: 'ws.yaml' })
    assert.deepEqual(r.issues, [])
    assert.ok(r.warnings.some((w) => w.code === 'config_not_in_file' && w.message.includes('my-qlora-params')))
  })

  test('a Workspace and its ConfigMap in one file: the Workspace method applies', () => {
    const ws = readFileSync(`${dir}kaito_workspace_tuning_phi_3.yaml`, 'utf8').replace('  method: qlora\n', '  method: lora\n  config: optimized-phi3-tuning\n')
    const cm = readFileSync(`${dir}kaito_configmap_tuning_phi_3.yaml`, 'utf8')
    const r = parseTuningConfig(`${cm}\n---\n${ws}`, { file: 'both.yaml' })
    assert.deepEqual(r.issues.map((i) => `${i.code} ${i.path}`), ['lora_forbids_quantization QuantizationConfig.load_in_4bit'])
    // Positions point into the ConfigMap's block scalar: the line of the flag, the column of its value.
    const lines = cm.split('\n')
    const line = lines.findIndex((l) => l.includes('load_in_4bit: true')) + 1
    assert.deepEqual([r.issues[0].line, r.issues[0].column], [line, lines[line - 1].indexOf('true') + 1])
  })

  test('inference-params is not a tuning config: check rejects it and says why', () => {
    const r = parseTuningConfig(readFileSync(`${dir}inference-params.yaml`), { file: 'inference-params.yaml' })
    assert.deepEqual(r.issues.map((i) => i.code), ['no_training_config'])
    assert.ok(r.warnings.some((w) => w.code === 'not_a_tuning_config'))
    assert.equal(r.value, null)
  })
})
