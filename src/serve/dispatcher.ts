/**
 * Between HTTP requests and the one worker: gives each request an id, admits at most
 * `maxConcurrency` in flight (queued in the worker or decoding; the next gets 429), routes the
 * worker's events back by id, and answers everything in flight with 503 when the worker dies.
 */
import type { DoneEvent, GenerateRequest, WorkerEvent, WorkerRequest } from '../runtime/serve-events.ts'
import { OpenAIError, openaiError } from './openai-error.ts'

/** The part of a ServeWorker the dispatcher uses (tests may pass anything that speaks it). */
export type WorkerPort = {
  send(request: WorkerRequest): boolean
  on(event: 'event', listener: (event: WorkerEvent) => void): unknown
}

type Pending = {
  onToken?: (text: string) => void
  resolve: (done: DoneEvent) => void
  reject: (err: OpenAIError) => void
}

export type Submitted = { id: string; done: Promise<DoneEvent>; cancel: () => void }

export class Dispatcher {
  readonly maxConcurrency: number
  readonly #worker: WorkerPort
  readonly #pending = new Map<string, Pending>()
  #next = 0
  #gone: string | null = null

  constructor(worker: WorkerPort, opts: { maxConcurrency: number }) {
    this.#worker = worker
    this.maxConcurrency = opts.maxConcurrency
    worker.on('event', (event) => this.#route(event))
  }

  get inFlight(): number {
    return this.#pending.size
  }

  /**
   * Sends one generation to the worker. Throws 429 when `maxConcurrency` are already in
   * flight and 503 once the worker is gone; `done` rejects with the worker's per-request error.
   */
  submit(request: Omit<GenerateRequest, 'id' | 'op'>, onToken?: (text: string) => void): Submitted {
    if (this.#gone !== null) throw openaiError(503, `the inference worker is gone: ${this.#gone}`, { code: 'worker_unavailable' })
    if (this.#pending.size >= this.maxConcurrency) {
      throw openaiError(429, `the server is at its limit of ${this.maxConcurrency} requests in flight (--max-concurrency): retry later`, { code: 'queue_full' })
    }
    const id = `r${++this.#next}`
    let pending!: Pending
    const done = new Promise<DoneEvent>((resolve, reject) => (pending = { onToken, resolve, reject }))
    this.#pending.set(id, pending)
    if (!this.#worker.send({ ...request, id, op: 'generate' })) {
      this.#pending.delete(id)
      throw openaiError(503, 'the inference worker is gone: it no longer reads requests', { code: 'worker_unavailable' })
    }
    return {
      id,
      done,
      cancel: () => {
        // A cancelled request no longer counts: its slot is free for the next client at once.
        if (this.#pending.delete(id)) this.#worker.send({ op: 'cancel', id })
      },
    }
  }

  /** Answers every request in flight with 503 and refuses new ones: the worker died. */
  workerGone(reason: string): void {
    this.#gone = reason
    const err = openaiError(503, `the inference worker stopped: ${reason}`, { code: 'worker_unavailable' })
    for (const p of this.#pending.values()) p.reject(err)
    this.#pending.clear()
  }

  #route(event: WorkerEvent): void {
    if (event.type !== 'token' && event.type !== 'done' && !(event.type === 'error' && event.id !== undefined)) return
    const p = this.#pending.get(event.id!)
    if (!p) return // cancelled, or not ours
    if (event.type === 'token') return p.onToken?.(event.text)
    this.#pending.delete(event.id!)
    if (event.type === 'done') return p.resolve(event)
    p.reject(event.kind === 'input' ? openaiError(400, event.message, { code: 'invalid_request' }) : openaiError(500, `the inference worker failed on this request: ${event.message}`, { code: 'worker_error' }))
  }
}
