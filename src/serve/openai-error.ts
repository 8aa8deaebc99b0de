/**
 * Errors as OpenAI's API shapes them, `{"error": {"message", "type", "param", "code"}}`, so the
 * official SDKs raise their usual classes (BadRequestError, AuthenticationError,
 * NotFoundError, RateLimitError, InternalServerError) with our message.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'

export type OpenAIErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } }

/** The `type` OpenAI uses for each status (its API reference, "Error codes"). */
const TYPE_BY_STATUS: Partial<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'invalid_request_error',
  404: 'invalid_request_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  500: 'server_error',
  503: 'server_error',
}

export class OpenAIError extends Error {
  readonly status: ContentfulStatusCode
  readonly param: string | null
  readonly code: string | null
  constructor(status: ContentfulStatusCode, message: string, opts: { param?: string | null; code?: string | null } = {}) {
    super(message)
    this.name = 'OpenAIError'
    this.status = status
    this.param = opts.param ?? null
    this.code = opts.code ?? null
  }

  get body(): OpenAIErrorBody {
    return { error: { message: this.message, type: TYPE_BY_STATUS[this.status] ?? 'invalid_request_error', param: this.param, code: this.code } }
  }
}

/** `openaiError(404, 'The model `x` does not exist', {param: 'model', code: 'model_not_found'})`. */
export function openaiError(status: ContentfulStatusCode, message: string, opts: { param?: string | null; code?: string | null } = {}): OpenAIError {
  return new OpenAIError(status, message, opts)
}
