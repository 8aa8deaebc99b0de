/** Validation of already-parsed input (query strings, route params, JSON bodies) with zod. */
import type { z } from 'zod'
import { HttpError, zodIssues } from './http-error.ts'

/**
 * Parses `value` with `schema` or throws a 400 whose issues name each bad field.
 * @example const q = readBody(listQuery, c.req.query())
 */
export function readBody<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.infer<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new HttpError(400, zodIssues(parsed.error, prefix))
  return parsed.data
}
