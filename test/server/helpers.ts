/** Shared fixtures for the server tests: canned trainer events, a fake run handle, an app on an in-memory store. */
import { EventEmitter } from 'node:events'
import type { TrainerEvent, RunSummary } from '../../src/runtime/events.ts'
import type { RunHandle, TuneOptions } from '../../src/runtime/types.ts'
import { RunMetrics } from '../../src/metrics/registry.ts'
import { openDb } from '../../src/store/db.ts'
import { RunStore } from '../../src/store/runs.ts'
import { createApp } from '../../src/server/app.ts'
import { RunHub } from '../../src/server/hub.ts'
import { defaultServices, type Services } from '../../src/server/services.ts'

export const GIB = 1024 ** 3

/** A plausible run: start, `steps` steps with rising memory and falling loss, done. */
export function cannedEvents(steps: number, t0 = 1_764_000_000_000): TrainerEvent[] {
  const events: TrainerEvent[] = [
    {
      type: 'start',
      t: t0,
      device: 'cuda',
      deviceName: 'NVIDIA A100-SXM4-80GB',
      model: { name: 'phi-3-mini-128k-instruct', params: 3_821_079_552 },
      method: 'qlora',
      totalSteps: steps,
      config: { TrainingArguments: { max_steps: steps } },
      predicted: { peakAllocatedBytes: Math.round(9.5 * GIB), peakBytes: Math.round(11 * GIB) },
      weights: { mode: 'random', source: 'random', configFrom: 'phi-3-mini-128k-instruct' },
    },
  ]
  for (let step = 1; step <= steps; step++) {
    const allocated = Math.round((6 + 2.5 * Math.sin(step / 3) ** 2) * GIB)
    events.push({
      type: 'step',
      t: t0 + step * 1000,
      step,
      totalSteps: steps,
      loss: 2.5 * Math.exp(-step / 20) + 0.3,
      lr: 2e-4,
      tokens: 4096,
      tokensPerSecond: 2100 + 50 * Math.sin(step),
      memory: {
        allocatedBytes: allocated,
        reservedBytes: allocated + Math.round(0.8 * GIB),
        peakAllocatedBytes: Math.round(8.9 * GIB),
        deviceUsedBytes: allocated + Math.round(1.4 * GIB),
      },
    })
  }
  events.push({
    type: 'done',
    t: t0 + (steps + 1) * 1000,
    summary: {
      state: 'succeeded',
      steps,
      firstLoss: 2.8,
      lastLoss: 0.4,
      adapterDir: '/tmp/adapter',
      device: 'cuda',
      predictedPeakBytes: Math.round(9.5 * GIB),
      measuredPeakBytes: Math.round(8.9 * GIB),
    },
  })
  return events
}

/** A RunHandle whose events the test pushes by hand. */
export class FakeHandle extends EventEmitter implements RunHandle {
  readonly id: string
  readonly outputDir: string
  readonly done: Promise<RunSummary>
  warning: string | null = null
  cancelled: string | undefined
  #finish!: (s: RunSummary) => void
  constructor(readonly opts: TuneOptions) {
    super()
    this.id = opts.runId ?? 'fake-run'
    this.outputDir = opts.output ?? `/tmp/${this.id}`
    this.done = new Promise((r) => (this.#finish = r))
  }
  push(event: TrainerEvent): void {
    this.emit('event', event)
  }
  finish(summary: RunSummary): void {
    this.#finish(summary)
  }
  cancel(signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM'): void {
    this.cancelled = signal
    this.finish({ state: 'cancelled', steps: 0, firstLoss: null, lastLoss: null, adapterDir: null, device: 'cpu', predictedPeakBytes: null, measuredPeakBytes: null })
  }
}

/** The app over an in-memory store, with the real library services and a fake supervisor. */
export function makeApp(opts: { token?: string; bodyLimitBytes?: number; services?: Partial<Services> } = {}) {
  const store = new RunStore(openDb(':memory:'))
  const metrics = new RunMetrics({ countRunsByState: () => store.countByState(), processMetrics: false })
  const handles: FakeHandle[] = []
  const services: Services = {
    ...defaultServices(),
    async startRun() {
      return async (o: TuneOptions) => {
        const h = new FakeHandle(o)
        handles.push(h)
        return h
      }
    },
    ...opts.services,
  }
  const hub = new RunHub(store, metrics, () => services.startRun())
  const app = createApp({ store, metrics, hub, services, token: opts.token, bodyLimitBytes: opts.bodyLimitBytes, runsDir: '/tmp/headroom-test-runs' })
  return { app, store, metrics, hub, handles }
}

export const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
})

/** Parses an SSE body into {id, event, data} messages. */
export function parseSse(text: string): { id?: string; event?: string; data: string }[] {
  return text
    .split('\n\n')
    .filter((block) => block.split('\n').some((l) => l.startsWith('data:')))
    .map((block) => {
      const m: { id?: string; event?: string; data: string } = { data: '' }
      for (const line of block.split('\n')) {
        const i = line.indexOf(':')
        const key = line.slice(0, i)
        const value = line.slice(i + 1).replace(/^ /, '')
        if (key === 'id') m.id = value
        else if (key === 'event') m.event = value
        else if (key === 'data') m.data += value
      }
      return m
    })
}
