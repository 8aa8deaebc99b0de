/**
 * The OpenAI-compatible Hono app of `headroom serve`: chat and text completions (whole or as
 * server-sent events), the model list, KAITO's /health and Prometheus /metrics. Every error is
 * OpenAI-shaped; auth and body limits are `headroom server`'s own (server/auth.ts, body.ts).
 */
import { randomUUID } from 'node:crypto'
import { Hono, type Context } from 'hono'
import { streamSSE } from 'hono/streaming'
import type { DoneEvent, ServedModel } from '../runtime/serve-events.ts'
import { bearerAuth } from '../server/auth.ts'
import { limitBody, readJsonRaw } from '../server/body.ts'
import { HttpError } from '../server/http-error.ts'
import type { Dispatcher } from './dispatcher.ts'
import type { ServeMetrics } from './metrics.ts'
import { OpenAIError, openaiError } from './openai-error.ts'
import { chatBody, completionBody, parseBody, toWorkerRequest, type ChatBody, type CompletionBody } from './requests.ts'

/** Prompts are text; 4 MiB holds any context window these models have, with room to spare. */
export const DEFAULT_BODY_LIMIT_BYTES = 4 * 1024 * 1024

export type ServeAppOptions = {
  dispatcher: Dispatcher
  models: ServedModel[]
  metrics: ServeMetrics
  token?: string
  bodyLimitBytes?: number
  /** Unix seconds the models were loaded (the `created` of /v1/models). */
  createdAt?: number
}

type Env = { Variables: { model: string } }
type Kind = 'chat' | 'text'

export function createServeApp(opts: ServeAppOptions): Hono<Env> {
  const app = new Hono<Env>()
  const created = opts.createdAt ?? Math.floor(Date.now() / 1000)
  const ids = new Set(opts.models.map((m) => m.id))
  const base = opts.models.find((m) => m.kind === 'base')?.id ?? null

  app.onError((err, c) => {
    const e = toOpenAIError(err)
    if (e.status >= 500 && !(err instanceof OpenAIError)) process.stderr.write(`headroom serve: ${c.req.method} ${c.req.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return c.json(e.body, e.status)
  })
  app.notFound((c) => c.json(openaiError(404, `no route ${c.req.method} ${c.req.path}: the routes are POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics`, { code: 'not_found' }).body, 404))

  // KAITO's probe path answers without a token, as `headroom server`'s /healthz does.
  if (opts.token) app.use('*', bearerAuth({ token: opts.token, open: ['/health'] }))
  const limit = limitBody(opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES)
  app.use('/v1/*', async (c, next) => {
    const res = await limit(c, next)
    if (res instanceof Response && res.status === 413) {
      const e = openaiError(413, `the request body is over the ${opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES}-byte limit: send a shorter prompt`, { code: 'body_too_large' })
      return c.json(e.body, 413, Object.fromEntries(res.headers.has('connection') ? [['Connection', res.headers.get('connection')!]] : []))
    }
    return res
  })

  app.get('/health', (c) => c.json({ status: 'Healthy' }))
  app.get('/metrics', async (c) => c.body(await opts.metrics.text(), 200, { 'Content-Type': opts.metrics.contentType }))

  const modelCard = (m: ServedModel) => ({ id: m.id, object: 'model', created, owned_by: 'headroom', root: m.kind === 'base' ? m.id : base, parent: m.kind === 'base' ? null : base })
  app.get('/v1/models', (c) => c.json({ object: 'list', data: opts.models.map(modelCard) }))
  app.get('/v1/models/:id{.+}', (c) => {
    const m = opts.models.find((x) => x.id === c.req.param('id'))
    if (!m) throw modelNotFound(c.req.param('id'), opts.models)
    return c.json(modelCard(m))
  })

  // Counted once answered, by the model asked for ('' when the body never named a valid one).
  const counted = async (c: Context<Env>, next: () => Promise<void>) => {
    await next()
    opts.metrics.answered(c.get('model') ?? '', c.res.status)
  }
  app.post('/v1/chat/completions', counted, (c) => complete(c, 'chat'))
  app.post('/v1/completions', counted, (c) => complete(c, 'text'))

  async function complete(c: Context<Env>, kind: Kind): Promise<Response> {
    const raw = await readJsonRaw(c)
    const body = kind === 'chat' ? parseBody(chatBody, raw) : parseBody(completionBody, raw)
    if (!ids.has(body.model)) throw modelNotFound(body.model, opts.models)
    c.set('model', body.model)
    const startMs = Date.now()
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`
    const createdNow = Math.floor(startMs / 1000)
    const finished = (done: DoneEvent) => opts.metrics.generated(body.model, done, startMs, Date.now())
    if (body.stream) return streamed(c, kind, body, { id, created: createdNow, finished })

    const sub = opts.dispatcher.submit(toWorkerRequest(body))
    // A client that hangs up frees its slot and stops its decoding.
    const aborted = new Promise<never>((_, reject) => {
      c.req.raw.signal.addEventListener('abort', () => {
        sub.cancel()
        reject(openaiError(499 as 400, 'the client closed the connection', { code: 'client_closed' }))
      })
    })
    aborted.catch(() => {})
    const done = await Promise.race([sub.done, aborted])
    finished(done)
    const choice =
      kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: done.text }, finish_reason: done.finishReason, logprobs: null }
        : { index: 0, text: done.text, finish_reason: done.finishReason, logprobs: null }
    return c.json({
      id,
      object: kind === 'chat' ? 'chat.completion' : 'text_completion',
      created: createdNow,
      model: body.model,
      choices: [choice],
      usage: usage(done),
    })
  }

  function streamed(c: Context<Env>, kind: Kind, body: ChatBody | CompletionBody, meta: { id: string; created: number; finished: (d: DoneEvent) => void }): Response {
    type Item = { kind: 'token'; text: string } | { kind: 'done'; done: DoneEvent } | { kind: 'error'; err: OpenAIError } | { kind: 'abort' }
    const items: Item[] = []
    let wake: (() => void) | null = null
    const push = (item: Item) => {
      items.push(item)
      wake?.()
      wake = null
    }
    // Submitted before the stream opens, so a full queue or a dead worker is a plain 429/503.
    const sub = opts.dispatcher.submit(toWorkerRequest(body), (text) => push({ kind: 'token', text }))
    sub.done.then(
      (done) => push({ kind: 'done', done }),
      (err) => push({ kind: 'error', err: toOpenAIError(err) }),
    )
    const includeUsage = body.stream_options?.include_usage === true
    const chunk = (delta: { text?: string; role?: boolean }, finish: string | null) => ({
      id: meta.id,
      object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
      created: meta.created,
      model: body.model,
      choices: [
        kind === 'chat'
          ? { index: 0, delta: { ...(delta.role ? { role: 'assistant' } : {}), ...(delta.text !== undefined ? { content: delta.text } : {}) }, finish_reason: finish, logprobs: null }
          : { index: 0, text: delta.text ?? '', finish_reason: finish, logprobs: null },
      ],
      ...(includeUsage ? { usage: null } : {}),
    })
    return streamSSE(c, async (stream) => {
      let over = false
      const hangUp = () => {
        if (over) return
        over = true
        sub.cancel()
        push({ kind: 'abort' })
      }
      stream.onAbort(hangUp)
      c.req.raw.signal.addEventListener('abort', hangUp)
      const send = (data: unknown) => stream.writeSSE({ data: JSON.stringify(data) })
      // OpenAI's first chat chunk carries the role with empty content.
      if (kind === 'chat') await send(chunk({ role: true, text: '' }, null))
      for (;;) {
        if (items.length === 0) await new Promise<void>((r) => (wake = r))
        const item = items.shift()!
        if (item.kind === 'abort') return
        if (item.kind === 'token') {
          if (item.text) await send(chunk({ text: item.text }, null))
          continue
        }
        over = true
        if (item.kind === 'error') {
          // Mid-stream the status line is gone; OpenAI's SDKs raise on an `error` object in a chunk.
          await send(item.err.body)
        } else {
          meta.finished(item.done)
          await send(chunk({}, item.done.finishReason))
          if (includeUsage) await send({ id: meta.id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: meta.created, model: body.model, choices: [], usage: usage(item.done) })
        }
        await stream.writeSSE({ data: '[DONE]' })
        return
      }
    })
  }

  return app
}

function usage(done: DoneEvent) {
  const { promptTokens, completionTokens } = done.usage
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
}

function modelNotFound(id: string, models: ServedModel[]): OpenAIError {
  return openaiError(404, `The model \`${id}\` does not exist: this server serves ${models.map((m) => `\`${m.id}\``).join(', ')} (GET /v1/models)`, { param: 'model', code: 'model_not_found' })
}

/** `headroom server`'s HttpError (auth, body limits, JSON) and anything unexpected, OpenAI-shaped. */
function toOpenAIError(err: unknown): OpenAIError {
  if (err instanceof OpenAIError) return err
  if (err instanceof HttpError) {
    const issue = err.issues[0]
    return openaiError(err.status, issue?.message ?? err.message, { param: issue?.path ?? null, code: err.status === 401 ? 'invalid_api_key' : (issue?.code ?? null) })
  }
  return openaiError(500, `internal error: ${err instanceof Error ? err.message : String(err)}`, { code: 'internal_error' })
}
