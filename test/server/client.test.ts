/** `headroom tune --server`: reportRun forwards a run's events to a server. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { reportRun } from '../../src/server/client.ts'
import { cannedEvents, FakeHandle, makeApp } from './helpers.ts'

const summary = { state: 'failed', steps: 2, firstLoss: 2, lastLoss: 1.5, adapterDir: null, device: 'cpu', predictedPeakBytes: null, measuredPeakBytes: 1000 } as const

test('reportRun forwards every event in order, and the server shows the run', async () => {
  const { app, store } = makeApp({ token: 'client-token' })
  const handle = new FakeHandle({ runId: 'reported-1' })
  const calls: string[] = []
  const reported = reportRun('http://server.test/', handle, {
    token: 'client-token',
    fetch: async (url, init) => {
      calls.push(String(url))
      return app.request(String(url), init as RequestInit)
    },
  })
  const events = cannedEvents(12)
  for (const e of events) handle.push(e)
  const final = { ...summary, state: 'succeeded', steps: 12, predictedPeakBytes: 4321 } as const
  handle.finish(final)
  assert.deepEqual(await reported, { posted: events.length, failed: 0 })
  assert.ok(calls.every((u) => u === 'http://server.test/v1/runs/reported-1/events'))
  assert.ok(calls.length < events.length, 'events that arrive during a request go in one batch')
  const run = store.getRun('reported-1')!
  assert.equal(run.source, 'remote')
  assert.equal(run.state, 'succeeded')
  assert.equal(run.lastSeq, events.length)
  const stored = store.eventsAfter('reported-1', 0).map((s) => s.event)
  assert.deepEqual(stored.slice(0, -1), events.slice(0, -1))
  // `done` carries the supervisor's summary (what tune --json prints), not the trainer's.
  const trainerDone = events.at(-1)!
  assert.deepEqual(stored.at(-1), { ...trainerDone, summary: { ...(trainerDone.type === 'done' ? trainerDone.summary : {}), ...final } })
  assert.equal(run.predictedPeakBytes, 4321)
})

test('a trainer that dies without `done` still ends the run on the server', async () => {
  const { app, store } = makeApp()
  const handle = new FakeHandle({ runId: 'reported-2' })
  const reported = reportRun('http://server.test', handle, { fetch: async (url, init) => app.request(String(url), init as RequestInit) })
  for (const e of cannedEvents(2).slice(0, 3)) handle.push(e)
  handle.finish(summary)
  await reported
  const run = store.getRun('reported-2')!
  assert.equal(run.state, 'failed')
  assert.equal(run.lastSeq, 4)
})

test('a server that is down costs a warning, never the run', async () => {
  const warnings: string[] = []
  const handle = new FakeHandle({ runId: 'reported-3' })
  const reported = reportRun('http://127.0.0.1:9', handle, {
    attempts: 2,
    warn: (m) => warnings.push(m),
    fetch: async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:9')
    },
  })
  for (const e of cannedEvents(3)) handle.push(e)
  handle.finish({ ...summary, state: 'succeeded' })
  const result = await reported
  assert.equal(result.posted, 0)
  assert.equal(result.failed, cannedEvents(3).length)
  assert.equal(warnings.length, 1)
  assert.match(warnings[0], /cannot reach the server at http:\/\/127\.0\.0\.1:9: connect ECONNREFUSED/)
})

test('a server that refuses the events (wrong token) stops reporting after one warning', async () => {
  const { app } = makeApp({ token: 'right-token' })
  const warnings: string[] = []
  const handle = new FakeHandle({ runId: 'reported-4' })
  const reported = reportRun('http://server.test', handle, { token: 'wrong', warn: (m) => warnings.push(m), fetch: async (url, init) => app.request(String(url), init as RequestInit) })
  for (const e of cannedEvents(3)) handle.push(e)
  handle.finish({ ...summary, state: 'succeeded' })
  const result = await reported
  assert.equal(result.posted, 0)
  assert.equal(warnings.length, 1)
  assert.match(warnings[0], /refused run events \(401\)/)
})
