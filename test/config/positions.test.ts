/** file:line:column of issues, including inside the ConfigMap's embedded block scalar. */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parseTuningConfig } from '../../src/config/parse.ts'

const lora = readFileSync(fileURLToPath(new URL('../fixtures/kaito/lora-params.yaml', import.meta.url)), 'utf8')

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function where(text: string, needle: string): [number, number] {
  const at = text.indexOf(needle)
  assert.ok(at >= 0, `fixture contains ${needle}`)
  const before = text.slice(0, at)
  return [before.split('\n').length, at - before.lastIndexOf('\n')]
}

describe('issue positions', () => {
  test('an unknown key inside training_config.yaml points at the key in the ConfigMap file', () => {
    const text = lora.replace('lora_alpha: 8', 'lora_alpah: 8')
    const r = parseTuningConfig(text, { file: 'lora.yaml' })
    const issue = r.issues.find((i) => i.code === 'unknown_key')
    assert.ok(issue)
    assert.equal(issue.file, 'lora.yaml')
    assert.deepEqual([issue.line, issue.column], where(text, 'lora_alpah'))
  })

  test('a bad value points at the value', () => {
    const text = lora.replace('per_device_train_batch_size: 1', 'per_device_train_batch_size: 0')
    const r = parseTuningConfig(text, { file: 'lora.yaml' })
    assert.equal(r.issues.length, 1)
    const [line, col] = where(text, 'per_device_train_batch_size: 0')
    assert.deepEqual([r.issues[0].line, r.issues[0].column], [line, col + 'per_device_train_batch_size: '.length])
  })

  test('a YAML syntax error inside the block scalar is reported at its line in the file', () => {
    const text = lora.replace('r: 8', 'r: [8')
    const r = parseTuningConfig(text, { file: 'lora.yaml' })
    assert.ok(r.issues.length >= 1)
    assert.ok(r.issues.every((i) => i.code === 'yaml_syntax'))
    const [line] = where(text, 'r: [8')
    assert.ok(r.issues.some((i) => i.line !== undefined && i.line >= line && i.line <= line + 3), JSON.stringify(r.issues))
  })

  test('positions hold with CRLF line endings and after a second document', () => {
    const crlf = `apiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: x\r\n---\r\n${lora.replace(/\n/g, '\r\n').replace('lora_dropout: 0.0', 'lora_dropout: 2')}`
    const r = parseTuningConfig(crlf, { file: 'multi.yaml' })
    assert.equal(r.issues.length, 1)
    const [line, col] = where(crlf.replace(/\r/g, ''), 'lora_dropout: 2')
    assert.deepEqual([r.issues[0].line, r.issues[0].column], [line, col + 'lora_dropout: '.length])
  })

  test('a bare document reports positions directly', () => {
    const text = 'training_config:\n  LoraConfig:\n    r: 8\n  Trainingarguments:\n    output_dir: /mnt/x\n'
    const r = parseTuningConfig(text, { file: 'bare.yaml' })
    assert.deepEqual(r.issues.map((i) => [i.code, i.path, i.line, i.column]), [['unknown_section', 'Trainingarguments', 4, 3]])
    assert.match(r.issues[0].message, /did you mean TrainingArguments\?/)
  })

  test('an explicit indentation indicator is honoured', () => {
    const text = 'kind: ConfigMap\napiVersion: v1\ndata:\n  training_config.yaml: |2\n    training_config:\n      LoraConfig:\n        r: -1\n'
    const r = parseTuningConfig(text, { file: 'ind.yaml' })
    assert.deepEqual(r.issues.map((i) => [i.path, i.line, i.column]), [['LoraConfig.r', 7, 12]])
  })

  test('a quoted (non-block) training_config.yaml falls back to the value start', () => {
    const text = 'kind: ConfigMap\napiVersion: v1\ndata:\n  training_config.yaml: "training_config:\\n  LoraConfig:\\n    r: 0\\n"\n'
    const r = parseTuningConfig(text, { file: 'q.yaml' })
    assert.deepEqual(r.issues.map((i) => [i.path, i.line, i.column]), [['LoraConfig.r', 4, 25]])
  })
})
