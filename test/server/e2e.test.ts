/**
 * End to end over real HTTP: a server on a free port with a temporary store starts a
 * 10-step fine-tune of the tiny default model through the real supervisor and trainer,
 * streams its events to `done`, exports its memory on /metrics, and still lists it after a
 * restart on the same database.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../../src/server/server.ts'
import { parseSse } from './helpers.ts'

test('a 10-step tiny run, end to end through the server', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-e2e-'))
  const db = join(dir, 'headroom.db')
  let server = await startServer({ db, port: 0, runsDir: join(dir, 'runs'), processMetrics: false })
  try {
    const res = await fetch(`${server.url}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ maxSteps: 10, device: 'cpu' }),
    })
    const created = (await res.json()) as { id: string; state: string }
    assert.equal(res.status, 201, JSON.stringify(created))
    const id = created.id

    const stream = await fetch(`${server.url}/v1/runs/${id}/events`)
    assert.equal(stream.status, 200)
    assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/)
    const messages = parseSse(await stream.text()) // the server ends the stream after `done`
    const types = messages.map((m) => m.event)
    assert.equal(types[0], 'start')
    assert.equal(types.at(-1), 'done', `events: ${types.join(',')}`)
    assert.equal(types.filter((t) => t === 'step').length, 10)
    assert.deepEqual(messages.map((m) => Number(m.id)), messages.map((_, i) => i + 1), 'ids are the sequence numbers')
    const done = JSON.parse(messages.at(-1)!.data) as { summary: { state: string; steps: number } }
    assert.equal(done.summary.state, 'succeeded')
    assert.equal(done.summary.steps, 10)

    // Resuming after the 7th event replays only the rest.
    const resumed = parseSse(await (await fetch(`${server.url}/v1/runs/${id}/events`, { headers: { 'Last-Event-ID': '7' } })).text())
    assert.deepEqual(resumed.map((m) => Number(m.id)), messages.slice(7).map((m) => Number(m.id)))

    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    const gauge = (name: string) => Number(metrics.match(new RegExp(`^${name}\\{run="${id}",device="cpu"\\} (\\S+)$`, 'm'))?.[1])
    for (const name of ['headroom_memory_allocated_bytes', 'headroom_memory_reserved_bytes', 'headroom_memory_peak_allocated_bytes', 'headroom_device_memory_used_bytes']) {
      assert.ok(gauge(name) > 0, `${name} is ${gauge(name)}`)
    }
    assert.equal(gauge('headroom_train_step'), 10)

    assert.match(metrics, /^headroom_runs\{state="succeeded"\} 1$/m)
    const before = (await (await fetch(`${server.url}/v1/runs/${id}`)).json()) as { state: string; measuredPeakBytes: number; predictedPeakBytes: number }
    assert.equal(before.state, 'succeeded')
    // The planner's prediction, as the supervisor settled it, next to the measurement.
    assert.ok(before.predictedPeakBytes > 0)
    assert.equal(gauge('headroom_memory_predicted_peak_bytes'), before.predictedPeakBytes)

    await server.close()
    server = await startServer({ db, port: 0, runsDir: join(dir, 'runs'), processMetrics: false })
    const { runs } = (await (await fetch(`${server.url}/v1/runs`)).json()) as { runs: { id: string; state: string; measuredPeakBytes: number }[] }
    const again = runs.find((r) => r.id === id)
    assert.ok(again, 'the run is still listed after a restart')
    assert.equal(again.state, 'succeeded')
    assert.equal(again.measuredPeakBytes, before.measuredPeakBytes)
    const rebuilt = await (await fetch(`${server.url}/metrics`)).text()
    assert.match(rebuilt, new RegExp(`^headroom_memory_peak_allocated_bytes\\{run="${id}",device="cpu"\\} [1-9]`, 'm'), 'gauges rebuilt from the store')
  } finally {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
