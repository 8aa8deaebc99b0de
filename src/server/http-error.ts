/**
 * The one error type of the HTTP boundary. Every 4xx answer is `{issues: [{code, path,
 * message}]}` (the same Issue shape the CLI prints), so a client handles one format.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { z } from 'zod'
import { ConfigError, ExitError, type Issue } from '../errors.ts'

export type ApiIssue = Pick<Issue, 'code' | 'path' | 'message'>

export class HttpError extends Error {
  readonly status: ContentfulStatusCode
  readonly issues: ApiIssue[]
  constructor(status: ContentfulStatusCode, issues: ApiIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('; '))
    this.name = 'HttpError'
    this.status = status
    this.issues = issues
  }
}

/** A single-issue error, e.g. `httpError(404, 'not_found', 'id', 'no run 2026...')`. */
export function httpError(status: ContentfulStatusCode, code: string, path: string, message: string): HttpError {
  return new HttpError(status, [{ code, path, message }])
}

/**
 * Turns zod issues into API issues. An unknown key becomes one issue per key with the key
 * as its path, so the answer names the field the client got wrong.
 */
export function zodIssues(error: z.ZodError, prefix = ''): ApiIssue[] {
  const join = (path: PropertyKey[]) => [prefix, ...path.map(String)].filter(Boolean).join('.') || 'body'
  return error.issues.flatMap((i): ApiIssue[] => {
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((key) => ({ code: 'unknown_field', path: join([...i.path, key]), message: `unknown field "${key}"` }))
    }
    return [{ code: i.code, path: join(i.path), message: i.message }]
  })
}

// Library errors are surface-neutral; over HTTP, an unknown name points to the catalog route.
const API_HINTS: Record<string, string> = {
  unknown_model: ' (GET /v1/models lists them)',
  unknown_gpu: ' (GET /v1/gpus lists them)',
}

/**
 * Maps what library functions throw for bad input to a 400: ConfigError keeps its issues,
 * ExitError names its field. Anything else is not the client's fault and returns undefined.
 */
export function fromLibraryError(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err
  if (err instanceof ConfigError) return new HttpError(400, err.issues.map(({ code, path, message }) => ({ code, path, message })))
  if (err instanceof ExitError) return httpError(400, err.code ?? 'invalid_value', err.path || 'body', `${err.message}${API_HINTS[err.code ?? ''] ?? ''}`)
  return undefined
}
