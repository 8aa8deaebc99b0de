/**
 * The Workspace CRD's openAPIV3Schema for one served version, made strict the way the API
 * server's `fieldValidation=Strict` is: an object schema that lists properties and does not
 * say `x-kubernetes-preserve-unknown-fields` rejects fields it does not list (the server would
 * otherwise prune them silently, and a typo would vanish). Pure.
 */

type Schema = Record<string, unknown>

/** The openAPIV3Schema of `version` in a CustomResourceDefinition object. */
export function crdVersionSchema(crd: unknown, version: string): Schema {
  const versions = ((crd as { spec?: { versions?: unknown[] } })?.spec?.versions ?? []) as { name?: string; schema?: { openAPIV3Schema?: Schema } }[]
  const v = versions.find((x) => x.name === version)
  if (!v?.schema?.openAPIV3Schema) throw new Error(`the CRD has no openAPIV3Schema for version ${version}`)
  return v.schema.openAPIV3Schema
}

/** A copy of a structural schema with `additionalProperties: false` wherever the server prunes. */
export function strictSchema(schema: Schema): Schema {
  const walk = (s: unknown): unknown => {
    if (Array.isArray(s)) return s.map(walk)
    if (!s || typeof s !== 'object') return s
    const out: Schema = {}
    for (const [k, v] of Object.entries(s as Schema)) {
      // `description` text is kept; nested schemas are walked.
      out[k] = k === 'description' ? v : walk(v)
    }
    if (out.type === 'object' && out.properties && out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) {
      out.additionalProperties = false
    }
    return out
  }
  return walk(schema) as Schema
}
