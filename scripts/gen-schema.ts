/**
 * Writes schemas/training-config.schema.json from the zod schema in src/config/schema.ts, for
 * editors (yaml-language-server: `# yaml-language-server: $schema=...`). A test fails when the
 * committed file differs from what this prints; rerun: node --import tsx scripts/gen-schema.ts
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { trainingConfigJsonSchema } from '../src/config/json-schema.ts'

const out = fileURLToPath(new URL('../schemas/training-config.schema.json', import.meta.url))
writeFileSync(out, trainingConfigJsonSchema())
console.log(`wrote ${out}`)
