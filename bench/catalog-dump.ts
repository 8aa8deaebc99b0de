/**
 * Prints every catalog model's config.json fields and Headroom's derived architecture as JSON,
 * for bench/catalog-vs-transformers.py to rebuild with transformers and compare:
 *
 *   node --import tsx bench/catalog-dump.ts | .venv/bin/python bench/catalog-vs-transformers.py
 */
import { CATALOG, findModelSync } from '../src/catalog/models.ts'

const rows = CATALOG.map((entry) => {
  const arch = findModelSync(entry.id)!
  return { id: entry.id, config: entry.config, params: arch.params, layerLinears: arch.layerLinears }
})
process.stdout.write(JSON.stringify(rows))
