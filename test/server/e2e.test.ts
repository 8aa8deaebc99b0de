/**
 * End to end over real HTTP: a server on a free port with a temporary store starts a
 * 10-step fine-tune of the tiny default model through the real supervisor and trainer,
 * streams its events to `done`, exports its memory on /metrics, and still lists it after a
 * restart on the same database.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { findLastCheckpoint } from '../../src/runtime/checkpoints.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../../src/server/server.ts'
import { parseSse } from './helpers.ts'
import { BIN, headroom, lastJsonLine } from '../runtime/helpers.ts'

type Summary = { state: string; steps: number; predictedPeakBytes: number; predictedMaxLengthPeakBytes: number; measuredPeakBytes: number }

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
    const done = JSON.parse(messages.at(-1)!.data) as { summary: Summary }
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
    const before = (await (await fetch(`${server.url}/v1/runs/${id}`)).json()) as Summary & { outputDir: string }
    assert.equal(before.state, 'succeeded')
    // One prediction per run: the planner at the longest batch trained, the same number in the
    // API, the stored events, /metrics and run.json; the max_length worst case beside it.
    assert.ok(before.predictedPeakBytes > 0)
    assert.ok(before.predictedMaxLengthPeakBytes > before.predictedPeakBytes, 'the default data is shorter than max_length')
    assert.equal(done.summary.predictedPeakBytes, before.predictedPeakBytes)
    assert.equal(done.summary.predictedMaxLengthPeakBytes, before.predictedMaxLengthPeakBytes)
    const lastStep = JSON.parse(messages.filter((m) => m.event === 'step').at(-1)!.data) as { predictedPeakBytes: number }
    assert.equal(lastStep.predictedPeakBytes, before.predictedPeakBytes)
    assert.equal(gauge('headroom_memory_predicted_peak_bytes'), before.predictedPeakBytes)
    assert.equal(gauge('headroom_memory_predicted_max_length_peak_bytes'), before.predictedMaxLengthPeakBytes)
    const record = JSON.parse(readFileSync(join(before.outputDir, 'run.json'), 'utf8'))
    assert.equal(record.summary.predictedPeakBytes, before.predictedPeakBytes)
    assert.equal(record.prediction.atObservedSeq.peakAllocatedBytes, before.predictedPeakBytes)
    assert.equal(record.summary.predictedMaxLengthPeakBytes, before.predictedMaxLengthPeakBytes)
    const ratio = before.measuredPeakBytes / before.predictedPeakBytes
    assert.ok(ratio > 0.9 && ratio < 1.1, `measured/predicted ${ratio.toFixed(3)} on the default run`)

    // The terminal door, same default configuration: the same prediction, to the byte (the
    // trainer puts the longest batch first, so a shorter run sees the same longest batch).
    const cli = await headroom(['tune', '--json', '--max-steps', '3', '--device', 'cpu', '--output', join(dir, 'cli-run')])
    assert.equal(cli.code, 0, cli.stderr)
    const cliSummary = lastJsonLine(cli.stdout)
    assert.equal(cliSummary.predictedPeakBytes, before.predictedPeakBytes)
    assert.equal(cliSummary.predictedMaxLengthPeakBytes, before.predictedMaxLengthPeakBytes)
    assert.match(cli.stderr, new RegExp(`predicted \\S+ \\S+ \\(${before.predictedPeakBytes.toLocaleString('en-US')} B\\)`))

    await server.close()
    server = await startServer({ db, port: 0, runsDir: join(dir, 'runs'), processMetrics: false })
    const { runs } = (await (await fetch(`${server.url}/v1/runs`)).json()) as { runs: { id: string; state: string; measuredPeakBytes: number }[] }
    const again = runs.find((r) => r.id === id)
    assert.ok(again, 'the run is still listed after a restart')
    assert.equal(again.state, 'succeeded')
    assert.equal(again.measuredPeakBytes, before.measuredPeakBytes)
    const rebuilt = await (await fetch(`${server.url}/metrics`)).text()
    assert.match(rebuilt, new RegExp(`^headroom_memory_peak_allocated_bytes\\{run="${id}",device="cpu"\\} [1-9]`, 'm'), 'gauges rebuilt from the store')
    assert.match(rebuilt, new RegExp(`^headroom_memory_predicted_peak_bytes\\{run="${id}",device="cpu"\\} ${before.predictedPeakBytes}$`, 'm'))
    assert.match(rebuilt, new RegExp(`^headroom_memory_predicted_max_length_peak_bytes\\{run="${id}",device="cpu"\\} ${before.predictedMaxLengthPeakBytes}$`, 'm'))
  } finally {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

/** Polls GET /v1/runs/:id until `check` holds. */
async function waitRun(url: string, id: string, check: (run: { state: string; steps: number }) => boolean, ms = 240_000) {
  const end = Date.now() + ms
  for (;;) {
    const run = (await (await fetch(`${url}/v1/runs/${id}`)).json()) as { state: string; steps: number; outputDir: string }
    if (check(run)) return run
    if (Date.now() > end) assert.fail(`run ${id} never got there: ${JSON.stringify(run)}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

test('cancelling twice through the API stops the run once, with its checkpoint', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-e2e-'))
  const server = await startServer({ db: join(dir, 'h.db'), port: 0, runsDir: join(dir, 'runs'), processMetrics: false })
  try {
    const res = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxSteps: 40, device: 'cpu' }) })
    const { id } = (await res.json()) as { id: string }
    await waitRun(server.url, id, (r) => r.steps >= 2)
    const cancel = () => fetch(`${server.url}/v1/runs/${id}/cancel`, { method: 'POST' })
    const [a, b] = await Promise.all([cancel(), cancel()])
    assert.deepEqual([a.status, b.status], [202, 202])
    assert.deepEqual(await b.json(), await a.json(), 'the same answer')
    const ended = await waitRun(server.url, id, (r) => r.state !== 'running')
    assert.equal(ended.state, 'cancelled')
    const checkpoint = findLastCheckpoint(ended.outputDir)
    assert.ok(checkpoint, 'the first cancel’s checkpoint is on disk')
    assert.equal(checkpoint.step, ended.steps)
    const record = JSON.parse(readFileSync(join(ended.outputDir, 'run.json'), 'utf8'))
    assert.deepEqual(record.checkpoints.map((c: { step: number }) => c.step), [checkpoint.step])
    const late = await cancel()
    assert.equal(late.status, 202, 'a cancel after the end repeats the answer')
  } finally {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a server killed with SIGKILL: after a restart its run is lost (API, /metrics), and tune --resume resumes it', { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-e2e-'))
  const db = join(dir, 'h.db')
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const child = spawn(BIN, ['server', '--port', String(port), '--db', db, '--runs-dir', join(dir, 'runs')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let serverErr = ''
  child.stderr.on('data', (d) => (serverErr += d))
  const url = `http://127.0.0.1:${port}`
  let server: Awaited<ReturnType<typeof startServer>> | undefined
  try {
    for (let i = 0; !/listening/.test(serverErr); i++) {
      if (i > 240) assert.fail(`server did not start: ${serverErr}`)
      await new Promise((r) => setTimeout(r, 250))
    }
    const res = await fetch(`${url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxSteps: 8, device: 'cpu' }) })
    const { id } = (await res.json()) as { id: string }
    const running = await waitRun(url, id, (r) => r.steps >= 2)
    child.kill('SIGKILL')
    // Its orphaned trainer checkpoints and stops on its own.
    await new Promise<void>((resolveWait, reject) => {
      const end = Date.now() + 120_000
      const poll = () => {
        const rec = existsSync(join(running.outputDir, 'run.json')) ? JSON.parse(readFileSync(join(running.outputDir, 'run.json'), 'utf8')) : null
        if (rec?.trainer?.state === 'preempted') return resolveWait()
        if (Date.now() > end) return reject(new Error(`the orphaned trainer never stopped: ${JSON.stringify(rec)}`))
        setTimeout(poll, 250)
      }
      poll()
    })

    server = await startServer({ db, port: 0, runsDir: join(dir, 'runs'), processMetrics: false })
    const lost = (await (await fetch(`${server.url}/v1/runs/${id}`)).json()) as { state: string }
    assert.equal(lost.state, 'lost')
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    assert.match(metrics, /^headroom_runs\{state="lost"\} 1$/m)
    assert.match(metrics, /^headroom_runs\{state="running"\} 0$/m)

    const resumed = await headroom(['tune', '--json', '--resume', running.outputDir])
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, new RegExp(`run ${id} was lost`))
    const summary = lastJsonLine(resumed.stdout)
    assert.equal(summary.state, 'succeeded')
    assert.equal(summary.steps, 8)
  } finally {
    child.kill('SIGKILL')
    await server?.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
