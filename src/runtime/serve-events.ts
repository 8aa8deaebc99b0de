/**
 * The inference worker's protocol (python -m headroom_runtime.serve; docs/serve-protocol.md):
 * requests go to its stdin as one JSON object per line, events come back on its stdout as
 * one JSON object per line (logs go to stderr). This zod schema is the TypeScript side of that
 * contract: a line that does not match it is reported, never guessed at.
 */
import { z } from 'zod'

const bytes = z.number().int().nonnegative()
const count = z.number().int().nonnegative()

/** Memory as the worker measured it (CUDA: memory_allocated/reserved; CPU: tracked tensor bytes). */
export const workerMemory = z.object({
  allocatedBytes: bytes,
  reservedBytes: bytes,
  peakAllocatedBytes: bytes.optional(),
})
export type WorkerMemory = z.infer<typeof workerMemory>

export const servedModel = z.object({ id: z.string().min(1), kind: z.enum(['base', 'adapter']) })
export type ServedModel = z.infer<typeof servedModel>

export const readyEvent = z.object({
  type: z.literal('ready'),
  models: z.array(servedModel).min(1),
  device: z.string(),
  dtype: z.string().optional(),
  memory: workerMemory.optional(),
})

/** Without an id: the worker could not start (exit 1 follows). With one: that request failed. */
export const errorEvent = z.object({
  type: z.literal('error'),
  id: z.string().optional(),
  kind: z.enum(['input', 'internal']),
  message: z.string(),
})

export const tokenEvent = z.object({ type: z.literal('token'), id: z.string(), text: z.string() })

export const doneEvent = z.object({
  type: z.literal('done'),
  id: z.string(),
  text: z.string(),
  finishReason: z.enum(['stop', 'length']),
  usage: z.object({ promptTokens: count, completionTokens: count }),
  /** Seconds from the worker receiving the request to its first generated token. */
  ttftSeconds: z.number().nonnegative().optional(),
  /** Seconds from the worker receiving the request to its last token. */
  seconds: z.number().nonnegative().optional(),
})

export const statsEvent = z.object({
  type: z.literal('stats'),
  memory: workerMemory.optional(),
  running: count,
  waiting: count,
})

export const workerEvent = z.discriminatedUnion('type', [readyEvent, errorEvent, tokenEvent, doneEvent, statsEvent])
export type WorkerEvent = z.infer<typeof workerEvent>
export type ReadyEvent = z.infer<typeof readyEvent>
export type DoneEvent = z.infer<typeof doneEvent>
export type StatsEvent = z.infer<typeof statsEvent>

/** One generation request as the worker reads it; omitted sampling fields take its defaults. */
export type GenerateRequest = {
  id: string
  op: 'generate'
  model: string
  prompt?: string
  messages?: { role: string; content: string }[]
  max_tokens?: number
  temperature?: number
  top_p?: number
  seed?: number
  stop?: string | string[]
  stream?: boolean
}
export type WorkerRequest = GenerateRequest | { op: 'cancel'; id: string } | { op: 'stats' }

export type ParsedWorkerLine = { kind: 'event'; event: WorkerEvent } | { kind: 'invalid'; error: string } | { kind: 'log' }

/**
 * Classifies one stdout line: a protocol event, a JSON object that breaks the protocol, or
 * anything else (a stray print from a library), which is a log line.
 * @example parseWorkerLine('{"type":"token","id":"r1","text":"hi"}')
 */
export function parseWorkerLine(line: string): ParsedWorkerLine {
  const trimmed = line.trim()
  if (!trimmed.startsWith('{')) return { kind: 'log' }
  let raw: unknown
  try {
    raw = JSON.parse(trimmed)
  } catch {
    return { kind: 'log' }
  }
  const parsed = workerEvent.safeParse(raw)
  if (!parsed.success) return { kind: 'invalid', error: parsed.error.issues.map((i) => `${i.path.join('.') || 'line'}: ${i.message}`).join('; ') }
  return { kind: 'event', event: parsed.data }
}
