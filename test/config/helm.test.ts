/** Helm-templated ConfigMaps: block-level and inline template lines are masked with one warning, never YAML errors. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { maskHelm, parseTuningConfig } from '../../src/config/parse.ts'

const chart = `{{- if .Values.tuning.enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-tuning
  namespace: {{ .Release.Namespace }}
data:
  training_config.yaml: |
    training_config:
      QuantizationConfig:
        load_in_4bit: true
        bnb_4bit_compute_dtype: "bfloat16"
      LoraConfig:
        r: {{ .Values.rank }}
        lora_alpha: 16
      TrainingArguments:
        {{- if .Values.epochs }}
        num_train_epochs: {{ .Values.epochs }}
        {{- end }}
        per_device_train_batch_size: 1
{{- end }}
`

test('a chart with block-level conditionals parses, with exactly one helm_template warning', () => {
  const r = parseTuningConfig(chart, { file: 'chart.yaml', method: 'qlora' })
  assert.deepEqual(r.issues, [], JSON.stringify(r.issues))
  const helm = r.warnings.filter((w) => w.code === 'helm_template')
  assert.equal(helm.length, 1)
  assert.deepEqual([helm[0].line, helm[0].column], [1, 1])
  assert.match(helm[0].message, /\{\{- if \.Values\.tuning\.enabled \}\}.*\(7 more Helm expressions masked the same way\)/)
  // Templated fields are unknown until `helm template`: checked as unset, not as strings.
  assert.equal(r.value?.LoraConfig?.r, undefined)
  assert.equal(r.value?.LoraConfig?.lora_alpha, 16)
  assert.equal(r.value?.TrainingArguments?.per_device_train_batch_size, 1)
})

test('masking keeps every line and column where it was', () => {
  const { text, spans } = maskHelm(chart)
  assert.equal(text.length, chart.length)
  assert.deepEqual(text.split('\n').map((l) => l.length), chart.split('\n').map((l) => l.length))
  assert.equal(spans.length, 8)
  assert.ok(text.startsWith('#{- if'))
})

test('a line with more than a template is still read as YAML, so its errors still show', () => {
  assert.equal(maskHelm('kind: ConfigMap\n').spans.length, 0)
  const r = parseTuningConfig(chart.replace('{{- if .Values.tuning.enabled }}', '{{- if .Values.tuning.enabled }} x: ['), { file: 'chart.yaml' })
  assert.ok(r.issues.length > 0)
})
