/**
 * Request bodies: a size limit that answers 413 so every client can read it, and JSON bodies
 * read against a zod schema. Malformed JSON, a wrong content type and schema violations all
 * become 4xx issues naming the field; nothing reaches a handler unvalidated.
 */
import type { Context, MiddlewareHandler } from 'hono'
import { z } from 'zod'
import { httpError } from './http-error.ts'
import { readBody } from './validate.ts'

/**
 * How much of an oversized body the server reads and throws away before answering 413. A
 * client that is still sending when the socket closes sees "Broken pipe" (Python's urllib) or
 * "socket hang up" instead of the answer; past these bounds the connection is closed anyway.
 */
export const DRAIN_MAX_BYTES = 64 * 1024 * 1024
export const DRAIN_MAX_MS = 10_000

export type DrainLimits = { maxBytes?: number; maxMs?: number }

/**
 * Caps request bodies at `limit` bytes, declared (Content-Length) or streamed (chunked). An
 * oversized body is read and discarded up to the drain limits, then answered with a 413 JSON.
 * @example app.use('/v1/*', limitBody(1024 * 1024))
 */
export function limitBody(limit: number, drain: DrainLimits = {}): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw
    if (!raw.body) return next()
    const declared = raw.headers.has('transfer-encoding') ? undefined : raw.headers.get('content-length')
    // The HTTP parser stops a body at its Content-Length, so a declared size is the size.
    if (declared != null && Number(declared) <= limit) return next()
    const reader = raw.body.getReader()
    const deadline = Date.now() + (drain.maxMs ?? DRAIN_MAX_MS)
    const drainBytes = drain.maxBytes ?? DRAIN_MAX_BYTES
    const chunks: Uint8Array[] = []
    let size = 0
    let over = declared != null
    let finished = false
    while (size <= drainBytes) {
      const chunk = await readBefore(reader, deadline)
      if (chunk === 'timeout') break
      if (chunk.done) {
        finished = true
        break
      }
      size += chunk.value.byteLength
      if (size > limit) over = true
      if (!over) chunks.push(chunk.value)
      else chunks.length = 0
    }
    if (!over && finished) {
      c.req.raw = new Request(raw, { body: concat(chunks, size) })
      return next()
    }
    if (!finished) void reader.cancel().catch(() => {})
    const err = httpError(413, 'body_too_large', 'body', `request body is over the ${limit}-byte limit: send a smaller body`)
    // Not drained: the rest of the body is still on the wire, so this connection cannot carry another request.
    return c.json({ issues: err.issues }, 413, finished ? {} : { Connection: 'close' })
  }
}

async function readBefore(reader: ReadableStreamDefaultReader<Uint8Array>, deadline: number): Promise<ReadableStreamReadResult<Uint8Array> | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()))))
  try {
    return await Promise.race([reader.read(), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

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
