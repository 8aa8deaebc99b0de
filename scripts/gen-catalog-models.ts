/**
 * Writes python/headroom_runtime/catalog-models.json: every catalog entry's id, hub id, aliases
 * and config.json fields (src/catalog/families/*.ts), so the Python runtime can build a catalogued
 * architecture from its config with random weights (headroom_runtime/random_weights.py) without
 * a second copy of the numbers. test/catalog/python-catalog.test.ts fails when the file is stale:
 *   node --import tsx scripts/gen-catalog-models.ts
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CATALOG } from '../src/catalog/models.ts'

export function catalogModelsText(): string {
  const rows = CATALOG.map((e) => ({ id: e.id, hfId: e.hfId, aliases: e.aliases ?? [], config: e.config }))
  return `${JSON.stringify({ generatedBy: 'scripts/gen-catalog-models.ts', models: rows }, null, 1)}\n`
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../python/headroom_runtime/catalog-models.json', import.meta.url))
  writeFileSync(file, catalogModelsText())
  console.log(`wrote ${file}`)
}
