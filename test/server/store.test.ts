import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openDb } from '../../src/store/db.ts'
import { LATEST_SAMPLES_SQL, RunStore } from '../../src/store/runs.ts'
import { RunMetrics } from '../../src/metrics/registry.ts'
import { cannedEvents, GIB } from './helpers.ts'

test('appendEvents numbers events per run, folds them into the run and stores step samples', () => {
  const store = new RunStore(openDb(':memory:'))
  assert.equal(store.createRun({ id: 'r1', source: 'remote' }), true)
  assert.equal(store.createRun({ id: 'r1', source: 'remote' }), false, 'a taken id is refused')
  const events = cannedEvents(5)
  const first = store.appendEvents('r1', events.slice(0, 3))
  assert.deepEqual(first.stored.map((s) => s.seq), [1, 2, 3])
  assert.equal(first.run.state, 'running')
  assert.equal(first.run.steps, 2)
  const rest = store.appendEvents('r1', events.slice(3))
  assert.deepEqual(rest.stored.map((s) => s.seq), [4, 5, 6, 7])
  const run = store.getRun('r1')!
  assert.equal(run.state, 'succeeded')
  assert.equal(run.lastSeq, 7)
  assert.equal(run.model, 'phi-3-mini-128k-instruct')
  assert.equal(run.predictedPeakBytes, Math.round(9.5 * GIB))
  assert.equal(store.samples('r1').length, 5)
  assert.deepEqual(store.eventsAfter('r1', 5).map((s) => s.event.type), ['step', 'done'])
  assert.deepEqual(store.getPlan('r1'), events[0].type === 'start' ? events[0].predicted : null)
  assert.deepEqual(store.countByState(), { succeeded: 1 })
})

test('finish ends a run with a summary whose fields win', () => {
  const store = new RunStore(openDb(':memory:'))
  store.createRun({ id: 'a', source: 'local' })
  store.appendEvents('a', cannedEvents(2).slice(0, 2))
  const summary = { state: 'failed', steps: 1, firstLoss: 1, lastLoss: 1, adapterDir: null, device: 'cpu', predictedPeakBytes: null, measuredPeakBytes: null } as const
  assert.equal(store.finish('a', summary)!.state, 'failed')
  store.createRun({ id: 'b', source: 'remote' })
  store.appendEvents('b', cannedEvents(2))
  const b = store.finish('b', { ...summary, state: 'succeeded', predictedPeakBytes: 777 })!
  assert.equal(b.state, 'succeeded')
  assert.equal(b.predictedPeakBytes, 777)
  assert.equal(b.summary?.adapterDir, null)
})

test('the store survives a reopen, runs in WAL mode and keeps serving readers during a write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-store-'))
  try {
    const file = join(dir, 'h.db')
    const db = openDb(file)
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
    const store = new RunStore(db)
    store.createRun({ id: 'r', source: 'remote', config: 'training_config: {}' })
    store.appendEvents('r', cannedEvents(3).slice(0, 3))
    // A second connection reads while the first holds an open write transaction.
    const reader = new Database(file, { readonly: true })
    db.exec('BEGIN IMMEDIATE')
    db.prepare(`UPDATE runs SET steps = 99 WHERE id = 'r'`).run()
    assert.equal((reader.prepare(`SELECT steps FROM runs WHERE id = 'r'`).get() as { steps: number }).steps, 2)
    db.exec('COMMIT')
    reader.close()
    db.close()
    const again = new RunStore(openDb(file))
    assert.equal(again.getRun('r')!.steps, 99)
    assert.equal(again.getConfig('r'), 'training_config: {}')
    assert.equal(again.getRun('r')!.lastSeq, 3)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a database from a newer schema is refused with a clear message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-store-'))
  try {
    const file = join(dir, 'h.db')
    const raw = new Database(file)
    raw.pragma('user_version = 99')
    raw.close()
    assert.throws(() => openDb(file), /newer Headroom/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('metrics follow step events and are rebuilt from the newest stored sample', async () => {
  const store = new RunStore(openDb(':memory:'))
  const live = new RunMetrics({ countRunsByState: () => store.countByState(), processMetrics: false })
  store.createRun({ id: 'r1', source: 'remote' })
  const events = cannedEvents(4)
  for (const s of store.appendEvents('r1', events).stored) live.observe('r1', s.event)
  const text = (await live.scrape()).body
  const last = events[4].type === 'step' ? events[4] : assert.fail()
  assert.match(text, new RegExp(`headroom_memory_allocated_bytes\\{run="r1",device="cuda"\\} ${last.memory.allocatedBytes}`))
  assert.match(text, /headroom_train_step\{run="r1",device="cuda"\} 4/)
  assert.match(text, new RegExp(`headroom_memory_predicted_peak_bytes\\{run="r1",device="cuda"\\} ${Math.round(9.5 * GIB)}`))
  assert.match(text, /headroom_runs\{state="succeeded"\} 1/)
  assert.match(text, /headroom_runs\{state="running"\} 0/)

  // The cached per-run text follows the next event.
  const next = { ...last, step: 5, memory: { ...last.memory, allocatedBytes: 123_456_789 } }
  live.observe('r1', next)
  assert.match((await live.scrape()).body, /headroom_memory_allocated_bytes\{run="r1",device="cuda"\} 123456789/)
  live.observe('r1', last)

  const rebuilt = new RunMetrics({ countRunsByState: () => store.countByState(), processMetrics: false })
  rebuilt.restore(store.latestSamples())
  const lines = (t: string) => t.split('\n').filter((l) => l.startsWith('headroom_')).sort()
  assert.deepEqual(lines((await rebuilt.scrape()).body), lines(text))
})

test('process metrics are exported when asked for', async () => {
  const m = new RunMetrics({ countRunsByState: () => ({}) })
  assert.match((await m.scrape()).body, /process_cpu_user_seconds_total/)
})

test('rebuilding the gauges seeks each run\'s newest sample instead of scanning samples', () => {
  const db = openDb(':memory:')
  const plan = (db.prepare(`EXPLAIN QUERY PLAN ${LATEST_SAMPLES_SQL}`).all() as { detail: string }[]).map((r) => r.detail)
  assert.ok(plan.some((d) => /SEARCH s USING PRIMARY KEY \(run_id=\? AND step=\?\)/.test(d)), plan.join('\n'))
  assert.ok(!plan.some((d) => /^SCAN s\b/.test(d)), plan.join('\n'))
})

test('the store moves states through the lifecycle reducer: lost only from running, nothing after success', () => {
  const store = new RunStore(openDb(':memory:'))
  const metrics = new RunMetrics({ countRunsByState: () => store.countByState(), processMetrics: false })
  store.createRun({ id: 'live', source: 'local' })
  store.appendEvents('live', cannedEvents(3).slice(0, 2))
  assert.equal(store.getRun('live')!.state, 'running')
  assert.equal(store.markLost('live')!.state, 'lost')
  assert.equal(store.getRun('live')!.summary, null)
  store.createRun({ id: 'done', source: 'local' })
  store.appendEvents('done', cannedEvents(2))
  assert.equal(store.markLost('done')!.state, 'succeeded', 'an ended run stays as it ended')
  assert.throws(() => store.appendEvents('done', cannedEvents(2).slice(0, 1)), /already succeeded; a finished run is never modified/)
  assert.deepEqual(store.countByState(), { lost: 1, succeeded: 1 })
  return metrics.scrape().then(({ body }) => {
    assert.match(body, /^headroom_runs\{state="lost"\} 1$/m)
    assert.match(body, /^headroom_runs\{state="running"\} 0$/m)
  })
})
