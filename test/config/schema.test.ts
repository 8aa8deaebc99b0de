/** The committed JSON Schema is exactly what scripts/gen-schema.ts generates from the zod schema. */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { trainingConfigJsonSchema } from '../../src/config/json-schema.ts'
import { SECTION_NAMES, SECTION_SCHEMAS } from '../../src/config/schema.ts'

const committed = readFileSync(fileURLToPath(new URL('../../schemas/training-config.schema.json', import.meta.url)), 'utf8')

describe('JSON Schema', () => {
  test('schemas/training-config.schema.json is up to date (rerun: node --import tsx scripts/gen-schema.ts)', () => {
    assert.equal(committed, trainingConfigJsonSchema())
  })

  test('it describes the six KAITO sections, closed to unknown keys, with runtime defaults', () => {
    const schema = JSON.parse(committed)
    const tc = schema.properties.training_config
    assert.deepEqual(Object.keys(tc.properties).sort(), [...SECTION_NAMES].sort())
    assert.equal(tc.additionalProperties, false)
    for (const name of SECTION_NAMES) {
      assert.equal(tc.properties[name].additionalProperties, false, name)
      assert.deepEqual(Object.keys(tc.properties[name].properties).sort(), Object.keys(SECTION_SCHEMAS[name].shape).sort())
    }
    const lora = tc.properties.LoraConfig.properties
    assert.equal(lora.r.type, 'integer')
    assert.equal(lora.r.exclusiveMinimum, 0)
    assert.equal(lora.r.default, 8)
    assert.equal(lora.lora_dropout.exclusiveMaximum, 1)
    assert.equal(tc.properties.TrainingArguments.properties.per_device_train_batch_size.default, 8)
    assert.equal(tc.properties.DatasetConfig.properties.train_test_split.maximum, 1)
  })
})
