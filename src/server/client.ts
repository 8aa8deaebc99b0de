/**
 * The client side of `headroom tune --server URL`: forwards a run's events to a Headroom
 * server (POST /v1/runs/:id/events) so it shows up there as if the server had started it.
 * Reporting never fails the fine-tune: a server that is down costs a warning, not the run.
 */
import type { RunHandle } from '../runtime/types.ts'
import type { RunSummary, TrainerEvent } from '../runtime/events.ts'

export type ReportOptions = {
  token?: string
  /** Where warnings go (default: stderr). */
  warn?: (message: string) => void
  /** Attempts per batch before giving up on the server (default 3). */
  attempts?: number
  /** Test hook. */
  fetch?: typeof fetch
}

export type ReportResult = { posted: number; failed: number }

const MAX_BATCH = 500

/**
 * Starts forwarding; resolves once the run is done and every event was sent (or given up on).
 * @example const reported = reportRun('http://127.0.0.1:8080', handle); await handle.done; await reported
 */
export function reportRun(url: string, handle: RunHandle, opts: ReportOptions = {}): Promise<ReportResult> {
  const doFetch = opts.fetch ?? fetch
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`headroom: ${m}\n`))
  const endpoint = `${url.replace(/\/+$/, '')}/v1/runs/${encodeURIComponent(handle.id)}/events`
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`

  const queue: TrainerEvent[] = []
  let sent = 0
  let failed = 0
  let broken = false
  let inFlight: Promise<void> | undefined

  const post = async (events: TrainerEvent[], firstSeq: number): Promise<boolean> => {
    for (let attempt = 1; attempt <= (opts.attempts ?? 3); attempt++) {
      try {
        const res = await doFetch(endpoint, { method: 'POST', headers, body: JSON.stringify({ events, firstSeq }) })
        if (res.ok) return true
        const text = await res.text()
        // 4xx will not get better by retrying: the server refused these events.
        if (res.status < 500) {
          warn(`the server at ${url} refused run events (${res.status}): ${text.slice(0, 300)}; no longer reporting`)
          broken = true
          return false
        }
      } catch (err) {
        if (attempt === (opts.attempts ?? 3)) warn(`cannot reach the server at ${url}: ${(err as Error).message}; no longer reporting`)
      }
      await new Promise((r) => setTimeout(r, 200 * attempt))
    }
    broken = true
    return false
  }

  // One request at a time, in order; events that arrive meanwhile go in the next batch.
  const pump = (): Promise<void> => {
    inFlight ??= (async () => {
      while (queue.length > 0 && !broken) {
        const batch = queue.splice(0, MAX_BATCH)
        if (await post(batch, sent + 1)) sent += batch.length
        else failed += batch.length
      }
      failed += queue.splice(0).length
    })().finally(() => {
      inFlight = undefined
    })
    return inFlight
  }

  let heldDone: Extract<TrainerEvent, { type: 'done' }> | undefined
  handle.on('event', (event) => {
    // The supervisor's summary (exit-code state, prediction at the longest batch run) is
    // what `tune --json` prints; the server should show the same, so `done` waits for it.
    if (event.type === 'done') {
      heldDone = event
      return
    }
    if (broken) {
      failed += 1
      return
    }
    queue.push(event)
    void pump()
  })

  return handle.done.then(async (summary: RunSummary) => {
    // Always one `done`: a trainer that died without its own would leave the run "running".
    if (!broken) queue.push({ type: 'done', t: heldDone?.t ?? Date.now(), summary: { ...heldDone?.summary, ...summary } })
    while (inFlight || (queue.length > 0 && !broken)) await (inFlight ?? pump())
    return { posted: sent, failed }
  })
}
