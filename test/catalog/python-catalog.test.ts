/**
 * The Python runtime builds catalogued models with random weights from
 * python/headroom_runtime/catalog-models.json (random_weights.py): it must hold exactly the
 * planner's catalog, or a random Phi-3-mini would not be the model the planner predicts.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { catalogModelsText } from '../../scripts/gen-catalog-models.ts'
import { findModelSync } from '../../src/catalog/models.ts'

const file = fileURLToPath(new URL('../../python/headroom_runtime/catalog-models.json', import.meta.url))

test('python/headroom_runtime/catalog-models.json is the catalog (rerun: node --import tsx scripts/gen-catalog-models.ts)', () => {
  assert.equal(readFileSync(file, 'utf8'), catalogModelsText())
})

test('the export carries every config.json field the planner reads, e.g. Phi-3-mini-128k', () => {
  const rows = JSON.parse(readFileSync(file, 'utf8')).models as { id: string; hfId: string; aliases: string[]; config: Record<string, unknown> }[]
  const phi = rows.find((r) => r.id === 'phi-3-mini-128k-instruct')!
  assert.equal(phi.hfId, 'microsoft/Phi-3-mini-128k-instruct')
  assert.deepEqual(phi.config, { model_type: 'phi3', hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32064, max_position_embeddings: 131072, sliding_window: 262144, tie_word_embeddings: false })
  for (const r of rows) assert.equal(findModelSync(r.hfId)?.name, r.id)
})
