/** The JSON Schema of training_config.yaml, generated from the zod schema (schemas/). */
import { z } from 'zod'
import { tuningDocumentSchema } from './schema.ts'

/** The schema as the text committed in schemas/training-config.schema.json. */
export function trainingConfigJsonSchema(): string {
  const schema = z.toJSONSchema(tuningDocumentSchema, { target: 'draft-2020-12', unrepresentable: 'any' })
  return `${JSON.stringify({ ...schema, $id: 'https://headroom.dev/schemas/training-config.schema.json' }, null, 2)}\n`
}
