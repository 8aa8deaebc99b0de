/**
 * 1,000 mixed good and bad requests at once over real HTTP: every good one succeeds, every
 * bad one gets a 4xx JSON answer naming the field, and the server keeps serving.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../../src/server/server.ts'
import { cannedEvents } from './helpers.ts'

type Case = { name: string; path: string; init?: RequestInit; good: boolean; status?: number; field?: string }

const post = (body: string): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body })

function makeCase(i: number): Case {
  const events = cannedEvents(3)
  const kinds: (() => Case)[] = [
    () => ({ name: 'healthz', path: '/healthz', good: true }),
    () => ({ name: 'list', path: '/v1/runs?limit=5', good: true }),
    () => ({ name: 'metrics', path: '/metrics', good: true }),
    () => ({ name: 'ingest', path: `/v1/runs/robust-${i}/events`, init: post(JSON.stringify({ events, firstSeq: 1 })), good: true }),
    () => ({ name: 'malformed JSON', path: `/v1/runs/robust-${i}/events`, init: post('{"events": ['), good: false, status: 400, field: 'body' }),
    () => ({ name: 'unknown field', path: '/v1/runs', init: post(JSON.stringify({ maxSteps: 1, gpuCount: 2 })), good: false, status: 400, field: 'gpuCount' }),
    () => ({ name: 'wrong type', path: '/v1/runs', init: post(JSON.stringify({ maxSteps: 'many' })), good: false, status: 400, field: 'maxSteps' }),
    () => ({ name: 'over the limit', path: `/v1/runs/robust-${i}/events`, init: post(JSON.stringify({ events, pad: 'x'.repeat(1.2 * 1024 * 1024) })), good: false, status: 413, field: 'body' }),
    () => ({ name: 'bad id', path: `/v1/runs/bad$id${i}`, good: false, status: 400, field: 'id' }),
    () => ({ name: 'unknown run', path: `/v1/runs/missing-${i}`, good: false, status: 404, field: 'id' }),
    () => ({ name: 'bad query', path: '/v1/runs?limit=-3', good: false, status: 400, field: 'query.limit' }),
    () => ({ name: 'plan', path: '/v1/plans', init: post(JSON.stringify({ method: i % 2 ? 'lora' : 'qlora', seq: 512 + i })), good: true }),
    () => ({ name: 'bad plan', path: '/v1/plans', init: post(JSON.stringify({ seq: -i })), good: false, status: 400, field: 'seq' }),
    () => ({ name: 'bad event', path: `/v1/runs/robust-${i}/events`, init: post(JSON.stringify({ events: [{ type: 'step' }] })), good: false, status: 400 }),
  ]
  return kinds[i % kinds.length]()
}

test('1,000 concurrent mixed requests: good ones succeed, bad ones get 4xx JSON', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-robust-'))
  const server = await startServer({ db: join(dir, 'h.db'), port: 0, processMetrics: false })
  try {
    const cases = Array.from({ length: 1000 }, (_, i) => makeCase(i))
    const results = await Promise.all(
      cases.map(async (c) => {
        const res = await fetch(server.url + c.path, c.init)
        const text = await res.text()
        return { c, status: res.status, type: res.headers.get('content-type') ?? '', text }
      }),
    )
    let good = 0
    let bad = 0
    for (const { c, status, type, text } of results) {
      if (c.good) {
        assert.equal(status, 200, `${c.name}: ${text.slice(0, 200)}`)
        good++
        continue
      }
      bad++
      assert.equal(status, c.status ?? status, `${c.name}: ${text.slice(0, 200)}`)
      assert.ok(status >= 400 && status < 500, `${c.name} got ${status}`)
      assert.match(type, /application\/json/, c.name)
      const body = JSON.parse(text) as { issues: { path: string }[] }
      if (c.field) assert.equal(body.issues[0].path, c.field, c.name)
      else assert.ok(body.issues[0].path.length > 0, c.name)
    }
    assert.equal(good + bad, 1000)
    // Every ingested run is there, complete, and the server still answers.
    const { runs } = (await (await fetch(`${server.url}/v1/runs?limit=1000`)).json()) as { runs: { id: string; lastSeq: number; state: string }[] }
    const ingested = cases.filter((c) => c.name === 'ingest').length
    assert.equal(runs.length, ingested)
    assert.ok(runs.every((r) => r.lastSeq === 5 && r.state === 'succeeded'))
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200)
  } finally {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
