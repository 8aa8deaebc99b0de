/**
 * Reads a JSON request body against a zod schema. Malformed JSON, a wrong content type and
 * schema violations all become 4xx issues naming the field; nothing reaches a handler
 * unvalidated.
 */
import type { Context } from 'hono'
import { z } from 'zod'
import { httpError } from './http-error.ts'
import { readBody } from './validate.ts'

/**
 * Parses and validates the body.
 * @example const body = await readJson(c, createRunBody)
 */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const type = c.req.header('content-type') ?? ''
  // Requiring application/json also stops a cross-site HTML form (text/plain, no CORS
  // preflight) from starting runs on a server bound to localhost without a token.
  if (!/^application\/json\b/i.test(type)) {
    throw httpError(415, 'unsupported_media_type', 'content-type', `send Content-Type: application/json (got "${type || 'none'}")`)
  }
  const text = await c.req.text()
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw httpError(400, 'invalid_json', 'body', `malformed JSON in request body: ${(err as Error).message}`)
  }
  return readBody(schema, raw)
}

/** The raw parsed JSON, for routes whose schema lives in another module. */
export async function readJsonRaw(c: Context): Promise<unknown> {
  return readJson(c, z.unknown())
}
