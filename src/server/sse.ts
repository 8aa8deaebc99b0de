/**
 * A run's events as server-sent events. Each message's id is the event's sequence number,
 * so a client that reconnects with Last-Event-ID (EventSource does it by itself) gets
 * exactly the events it missed: stored ones are replayed, then live ones follow. The
 * stream ends after the run's last event.
 */
import type { Context } from 'hono'
import { streamSSE, type SSEStreamingApi } from 'hono/streaming'
import { isTerminal } from '../store/fold.ts'
import type { RunStore, StoredEvent } from '../store/runs.ts'
import type { LiveMessage, RunHub } from './hub.ts'

/** Keeps proxies and browsers from dropping an idle stream between slow steps. */
const HEARTBEAT_MS = 15_000
const REPLAY_PAGE = 500

export function runEventStream(c: Context, deps: { store: RunStore; hub: RunHub; runId: string; afterSeq: number }): Response {
  const { store, hub, runId } = deps
  return streamSSE(c, async (stream) => {
    let last = deps.afterSeq
    const queue: LiveMessage[] = []
    let wake: (() => void) | undefined
    let aborted = false
    // Subscribe before replaying, so nothing stored during the replay is missed; the
    // sequence numbers drop what the replay already sent.
    const unsubscribe = hub.subscribe(runId, (m) => {
      queue.push(m)
      wake?.()
    })
    stream.onAbort(() => {
      aborted = true
      wake?.()
    })
    const send = async (s: StoredEvent) => {
      if (s.seq <= last) return
      await stream.writeSSE({ id: String(s.seq), event: s.event.type, data: JSON.stringify(s.event) })
      last = s.seq
    }
    const replay = async () => {
      for (;;) {
        const page = store.eventsAfter(runId, last, REPLAY_PAGE)
        for (const s of page) await send(s)
        if (page.length < REPLAY_PAGE) return
      }
    }
    try {
      await replay()
      for (;;) {
        if (aborted) return
        const run = store.getRun(runId)
        if (!run) return
        if (queue.length === 0 && isTerminal(run.state)) {
          await replay()
          return
        }
        while (queue.length > 0) {
          const m = queue.shift()!
          if (m.kind === 'end') {
            await replay()
            return
          }
          await send(m.stored)
        }
        await idle(stream, () => queue.length > 0 || aborted, (w) => (wake = w))
      }
    } finally {
      unsubscribe()
    }
  })
}

/** Waits for a live message or the heartbeat interval, whichever comes first. */
async function idle(stream: SSEStreamingApi, ready: () => boolean, setWake: (w: () => void) => void): Promise<void> {
  if (ready()) return
  let timer: NodeJS.Timeout | undefined
  const woke = await new Promise<boolean>((resolve) => {
    setWake(() => resolve(true))
    timer = setTimeout(() => resolve(false), HEARTBEAT_MS)
  })
  clearTimeout(timer)
  if (!woke) await stream.write(': keep-alive\n\n')
}
