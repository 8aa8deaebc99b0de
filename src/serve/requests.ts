/**
 * The request bodies of the OpenAI-compatible routes, validated with zod, and their
 * translation into worker requests. Unknown fields are ignored (as vLLM and most
 * OpenAI-compatible servers do; OpenAI itself rejects them), so clients that send `user`,
 * `frequency_penalty`, `logit_bias` ... still work; fields we cannot honour in a way that
 * changes the answer (n > 1, logprobs, tools) are refused with a 400 naming the field.
 */
import { z } from 'zod'
import type { GenerateRequest } from '../runtime/serve-events.ts'
import { openaiError, type OpenAIError } from './openai-error.ts'

/** When max_tokens is absent (OpenAI: "as many as the context allows"; we keep answers short). */
export const DEFAULT_MAX_TOKENS = 16
/** OpenAI's default temperature (API reference: "Defaults to 1"); send 0 for greedy decoding. */
export const DEFAULT_TEMPERATURE = 1

const stop = z
  .union([z.string(), z.array(z.string())], { error: 'stop must be a string or a list of strings' })
  .refine((s) => typeof s === 'string' || s.length <= 4, 'at most 4 stop sequences (as OpenAI allows)')
  .nullish()

const sampling = {
  model: z.string({ error: 'model is required: one id of GET /v1/models' }).min(1, 'model must not be empty'),
  max_tokens: z.number().int('max_tokens must be a whole number of tokens').positive('max_tokens must be 1 or more').nullish(),
  temperature: z.number().min(0, 'temperature must be from 0 (greedy) to 2').max(2, 'temperature must be from 0 (greedy) to 2').nullish(),
  top_p: z.number().gt(0, 'top_p must be over 0 and at most 1').max(1, 'top_p must be over 0 and at most 1').nullish(),
  seed: z.number().int('seed must be a whole number').nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.literal(1, { error: 'only n=1 is supported: send one request per completion' }).nullish(),
  logprobs: z.union([z.literal(false), z.null()], { error: 'logprobs are not supported: leave logprobs unset' }).optional(),
  tools: z.undefined({ error: 'tools are not supported by this server: leave tools unset' }).optional(),
}

/** A message's content: a string, or OpenAI's list of text parts (joined). */
const content = z.union([
  z.string(),
  z.array(z.object({ type: z.literal('text', { error: 'only text content parts are supported' }), text: z.string() })).transform((parts) => parts.map((p) => p.text).join('')),
])

export const chatBody = z.object({
  ...sampling,
  messages: z
    .array(z.object({ role: z.enum(['system', 'user', 'assistant', 'developer']), content: content.nullish().transform((c) => c ?? '') }))
    .min(1, 'messages must hold at least one message'),
  max_completion_tokens: z.number().int('max_completion_tokens must be a whole number of tokens').positive('max_completion_tokens must be 1 or more').nullish(),
})
export type ChatBody = z.infer<typeof chatBody>

export const completionBody = z.object({
  ...sampling,
  prompt: z
    .union([z.string(), z.array(z.string())], { error: 'prompt is required: a string' })
    .refine((p) => typeof p === 'string' || p.length === 1, 'send one prompt per request (a list of one string at most)')
    .transform((p) => (typeof p === 'string' ? p : p[0])),
  echo: z.union([z.literal(false), z.null()], { error: 'echo is not supported: leave echo unset' }).optional(),
  suffix: z.null({ error: 'suffix is not supported: leave suffix unset' }).optional(),
})
export type CompletionBody = z.infer<typeof completionBody>

/** Parses a body or throws a 400 naming the first field that is wrong, as OpenAI does. */
export function parseBody<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw openaiError(400, 'the request body must be a JSON object', { code: 'invalid_body' })
  const parsed = schema.safeParse(raw)
  if (parsed.success) return parsed.data
  throw fromZod(parsed.error)
}

function fromZod(error: z.ZodError): OpenAIError {
  const issue = error.issues[0]
  const param = issue.path.map(String).join('.') || null
  return openaiError(400, `${param ?? 'body'}: ${issue.message}`, { param, code: 'invalid_value' })
}

/** The worker request for a validated body (the id is the dispatcher's). */
export function toWorkerRequest(body: ChatBody | CompletionBody): Omit<GenerateRequest, 'id' | 'op'> {
  const maxTokens = ('max_completion_tokens' in body ? body.max_completion_tokens : undefined) ?? body.max_tokens ?? DEFAULT_MAX_TOKENS
  const req: Omit<GenerateRequest, 'id' | 'op'> = { model: body.model, max_tokens: maxTokens, stream: body.stream ?? false }
  if ('messages' in body) req.messages = body.messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: m.content }))
  else req.prompt = body.prompt
  req.temperature = body.temperature ?? DEFAULT_TEMPERATURE
  if (body.top_p != null) req.top_p = body.top_p
  if (body.seed != null) req.seed = body.seed
  if (body.stop != null && (typeof body.stop === 'string' ? body.stop !== '' : body.stop.length > 0)) req.stop = body.stop
  return req
}
