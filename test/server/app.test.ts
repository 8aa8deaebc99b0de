/** Route-level tests through app.request(): every route, and every kind of bad request. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cannedEvents, FakeHandle, json, makeApp, parseSse } from './helpers.ts'

type Issues = { issues: { code: string; path: string; message: string }[] }

async function issues(res: Response): Promise<Issues['issues']> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/)
  const body = (await res.json()) as Issues
  assert.ok(Array.isArray(body.issues) && body.issues.length > 0, 'an error names at least one issue')
  for (const i of body.issues) assert.ok(typeof i.code === 'string' && typeof i.path === 'string' && typeof i.message === 'string')
  assert.doesNotMatch(JSON.stringify(body), /\n\s+at /, 'no stack trace')
  return body.issues
}

test('GET /healthz answers ok', async () => {
  const { app } = makeApp()
  const res = await app.request('/healthz')
  assert.equal(res.status, 200)
  assert.deepEqual(await res.json(), { ok: true })
})

test('GET /metrics is Prometheus text with the run gauges', async () => {
  const { app } = makeApp()
  await app.request('/v1/runs/r-1/events', json({ events: cannedEvents(3) }))
  const res = await app.request('/metrics')
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /text\/plain; version=0\.0\.4/)
  const text = await res.text()
  for (const name of ['headroom_memory_allocated_bytes', 'headroom_memory_reserved_bytes', 'headroom_memory_peak_allocated_bytes', 'headroom_device_memory_used_bytes', 'headroom_memory_predicted_peak_bytes', 'headroom_train_step', 'headroom_train_loss', 'headroom_train_tokens_per_second']) {
    assert.match(text, new RegExp(`^${name}\\{run="r-1",device="cuda"\\} [0-9.e+-]+$`, 'm'), name)
  }
  assert.match(text, /^headroom_runs\{state="succeeded"\} 1$/m)
})

test('unknown routes are 404 JSON', async () => {
  const { app } = makeApp()
  const res = await app.request('/v1/nope')
  assert.equal(res.status, 404)
  assert.equal((await issues(res))[0].code, 'not_found')
})

test('POST /v1/runs starts a local run, which the events then drive', async () => {
  const { app, handles } = makeApp()
  const res = await app.request('/v1/runs', json({ maxSteps: 3, device: 'cpu', runId: 'local-1', config: 'training_config: {}' }))
  assert.equal(res.status, 201)
  assert.equal(res.headers.get('location'), '/v1/runs/local-1')
  const created = (await res.json()) as { id: string; state: string; source: string; options: Record<string, unknown> }
  assert.equal(created.id, 'local-1')
  assert.equal(created.state, 'queued')
  assert.equal(created.source, 'local')
  assert.deepEqual(created.options, { maxSteps: 3, device: 'cpu', runId: 'local-1' })
  const h = handles[0]
  assert.equal(h.opts.maxSteps, 3)
  assert.match(h.opts.config ?? '', /local-1\/request_config\.yaml$/, 'the config text reaches the supervisor as a file')
  for (const e of cannedEvents(3)) h.push(e)
  const running = (await (await app.request('/v1/runs/local-1')).json()) as { state: string; steps: number; lastSeq: number; plan: unknown }
  assert.equal(running.state, 'running', 'the trainer\'s done waits for the supervisor\'s summary')
  assert.equal(running.steps, 3)
  assert.equal(running.lastSeq, 4)
  assert.ok(running.plan)
  h.finish({ state: 'succeeded', steps: 3, firstLoss: 2.8, lastLoss: 0.4, adapterDir: '/tmp/a', device: 'cuda', predictedPeakBytes: 1234, measuredPeakBytes: 999 })
  await new Promise((r) => setImmediate(r))
  const got = (await (await app.request('/v1/runs/local-1')).json()) as { state: string; lastSeq: number; predictedPeakBytes: number }
  assert.equal(got.state, 'succeeded')
  assert.equal(got.lastSeq, 5, 'one done event, last')
  assert.equal(got.predictedPeakBytes, 1234, 'the supervisor\'s summary wins')
  const again = await app.request('/v1/runs', json({ runId: 'local-1' }))
  assert.equal(again.status, 409)
  assert.equal((await issues(again))[0].path, 'runId')
})

test("POST /v1/runs answers with the planner's pre-flight warning when the supervisor has one, as tune prints it", async () => {
  const warning = 'the worst case at max_length may not fit (batches padded that long would run out of memory): at 131,072 tokens × batch 8 this needs 9.9 TiB, this machine has 24.0 GiB: set TrainingArguments.max_length to 2,048'
  const { app } = makeApp({ services: { async startRun() { return async (o) => Object.assign(new FakeHandle(o), { warning }) } } })
  const res = await app.request('/v1/runs', json({ maxSteps: 1, runId: 'warned' }))
  assert.equal(res.status, 201)
  assert.equal(((await res.json()) as { warning?: string }).warning, warning)
  // The store keeps it: the run view reads it back.
  assert.equal(((await (await app.request('/v1/runs/warned')).json()) as { warning: string | null }).warning, warning)
  // Without one, null.
  const quiet = makeApp()
  const ok = (await (await quiet.app.request('/v1/runs', json({ maxSteps: 1, runId: 'quiet' }))).json()) as Record<string, unknown>
  assert.equal(ok.warning, null)
})

test('POST /v1/runs rejects bad bodies, naming the field', async () => {
  const { app, handles } = makeApp()
  const cases: [string, RequestInit, number, string][] = [
    ['malformed JSON', json('{"maxSteps": 3'), 400, 'body'],
    ['unknown field', json({ maxSteps: 3, outputDir: '/etc' }), 400, 'outputDir'],
    ['wrong type', json({ maxSteps: 'ten' }), 400, 'maxSteps'],
    ['negative steps', json({ maxSteps: -1 }), 400, 'maxSteps'],
    ['bad device', json({ device: 'tpu' }), 400, 'device'],
    ['path as resume', json({ resume: '../../etc' }), 400, 'resume'],
    ['bad run id', json({ runId: '../x' }), 400, 'runId'],
    ['not an object', json([1, 2]), 400, 'body'],
    ['wrong content type', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }, 415, 'content-type'],
  ]
  for (const [name, init, status, path] of cases) {
    const res = await app.request('/v1/runs', init)
    assert.equal(res.status, status, name)
    assert.equal((await issues(res))[0].path, path, name)
  }
  assert.equal(handles.length, 0, 'no run started')
})

test('bodies over the limit get 413 JSON', async () => {
  const { app } = makeApp({ bodyLimitBytes: 1024 })
  const res = await app.request('/v1/runs', json({ config: 'x'.repeat(4096) }))
  assert.equal(res.status, 413)
  assert.equal((await issues(res))[0].code, 'body_too_large')
})

test('GET /v1/runs lists newest first and validates its query', async () => {
  const { app, store } = makeApp()
  store.createRun({ id: 'old', source: 'remote', now: 1 })
  store.createRun({ id: 'new', source: 'remote', now: 2 })
  const list = (await (await app.request('/v1/runs')).json()) as { runs: { id: string }[] }
  assert.deepEqual(list.runs.map((r) => r.id), ['new', 'old'])
  const one = (await (await app.request('/v1/runs?limit=1')).json()) as { runs: unknown[] }
  assert.equal(one.runs.length, 1)
  for (const [q, path] of [['limit=0', 'query.limit'], ['state=bogus', 'query.state'], ['color=red', 'query.color']]) {
    const res = await app.request(`/v1/runs?${q}`)
    assert.equal(res.status, 400, q)
    assert.equal((await issues(res))[0].path, path, q)
  }
})

test('run routes validate ids and answer 404 for unknown runs', async () => {
  const { app } = makeApp()
  for (const path of ['/v1/runs/bad%20id', '/v1/runs/..%2F..%2Fetc', `/v1/runs/${'a'.repeat(65)}`, '/v1/runs/-x/events']) {
    const res = await app.request(path)
    assert.equal(res.status, 400, path)
    assert.equal((await issues(res))[0].path, 'id', path)
  }
  for (const [path, init] of [['/v1/runs/missing', undefined], ['/v1/runs/missing/events', undefined], ['/v1/runs/missing/cancel', { method: 'POST' }]] as const) {
    const res = await app.request(path, init)
    assert.equal(res.status, 404, path)
    assert.equal((await issues(res))[0].code, 'not_found')
  }
})

test('POST /v1/runs/:id/events ingests remote events, idempotently with firstSeq', async () => {
  const { app } = makeApp()
  const events = cannedEvents(4)
  let res = await app.request('/v1/runs/remote-1/events', json({ events: events.slice(0, 3), firstSeq: 1 }))
  assert.deepEqual(await res.json(), { accepted: 3, lastSeq: 3, state: 'running' })
  // A retry of the same batch plus new events stores only the new ones.
  res = await app.request('/v1/runs/remote-1/events', json({ events: events.slice(0, 5), firstSeq: 1 }))
  assert.deepEqual(await res.json(), { accepted: 2, lastSeq: 5, state: 'running' })
  res = await app.request('/v1/runs/remote-1/events', json({ events: events.slice(5), firstSeq: 7 }))
  assert.equal(res.status, 409, 'a gap is refused')
  assert.equal((await issues(res))[0].path, 'firstSeq')
  res = await app.request('/v1/runs/remote-1/events', json({ events: events.slice(5), firstSeq: 6 }))
  assert.deepEqual(await res.json(), { accepted: 1, lastSeq: 6, state: 'succeeded' })
  res = await app.request('/v1/runs/remote-1/events', json({ events: events.slice(1, 2) }))
  assert.equal(res.status, 409, 'an ended run takes no more events')
  res = await app.request('/v1/runs/remote-1/events', json({ events: [{ type: 'step', t: 1, step: 0 }] }))
  assert.equal(res.status, 400)
  assert.match((await issues(res))[0].path, /^events\.0\./)
  res = await app.request('/v1/runs/remote-1/events', json({ events: [] }))
  assert.equal((await issues(res))[0].path, 'events')
})

test('a run started here does not take reported events', async () => {
  const { app } = makeApp()
  await app.request('/v1/runs', json({ runId: 'mine' }))
  const res = await app.request('/v1/runs/mine/events', json({ events: cannedEvents(1).slice(0, 1) }))
  assert.equal(res.status, 409)
})

test('GET /v1/runs/:id/events replays stored events and resumes after Last-Event-ID', async () => {
  const { app } = makeApp()
  const events = cannedEvents(3)
  await app.request('/v1/runs/s-1/events', json({ events }))
  const all = parseSse(await (await app.request('/v1/runs/s-1/events')).text())
  assert.deepEqual(all.map((m) => m.id), ['1', '2', '3', '4', '5'])
  assert.deepEqual(all.map((m) => m.event), ['start', 'step', 'step', 'step', 'done'])
  assert.deepEqual(JSON.parse(all[1].data), events[1])
  const resumed = parseSse(await (await app.request('/v1/runs/s-1/events', { headers: { 'Last-Event-ID': '3' } })).text())
  assert.deepEqual(resumed.map((m) => m.id), ['4', '5'])
  const viaQuery = parseSse(await (await app.request('/v1/runs/s-1/events?after=4')).text())
  assert.deepEqual(viaQuery.map((m) => m.id), ['5'])
  const bad = await app.request('/v1/runs/s-1/events', { headers: { 'Last-Event-ID': 'abc' } })
  assert.equal(bad.status, 400)
  assert.equal((await issues(bad))[0].path, 'Last-Event-ID')
})

test('SSE follows a live run from the middle to its end', async () => {
  const { app, handles } = makeApp()
  await app.request('/v1/runs', json({ runId: 'live-1' }))
  const events = cannedEvents(4)
  const h = handles[0]
  h.push(events[0])
  h.push(events[1])
  const res = await app.request('/v1/runs/live-1/events')
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const pusher = (async () => {
    for (const e of events.slice(2)) {
      await new Promise((r) => setTimeout(r, 5))
      h.push(e)
    }
    h.finish({ state: 'succeeded', steps: 4, firstLoss: 1, lastLoss: 0.5, adapterDir: null, device: 'cuda', predictedPeakBytes: null, measuredPeakBytes: null })
  })()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    text += decoder.decode(value)
  }
  await pusher
  const got = parseSse(text)
  assert.deepEqual(got.map((m) => Number(m.id)), [1, 2, 3, 4, 5, 6])
  assert.equal(got.at(-1)!.event, 'done')
})

test('POST /v1/runs/:id/cancel stops a local run once; later cancels repeat the answer; never-cancelled ended or remote runs answer 409', async () => {
  const { app, handles } = makeApp()
  await app.request('/v1/runs', json({ runId: 'c-1' }))
  const res = await app.request('/v1/runs/c-1/cancel', { method: 'POST' })
  assert.equal(res.status, 202)
  const first = await res.json()
  assert.equal(handles[0].cancelled, 'SIGINT')
  handles[0].cancelled = undefined
  await handles[0].done
  await new Promise((r) => setImmediate(r))
  const run = (await (await app.request('/v1/runs/c-1')).json()) as { state: string }
  assert.equal(run.state, 'cancelled')
  const again = await app.request('/v1/runs/c-1/cancel', { method: 'POST' })
  assert.equal(again.status, 202)
  assert.deepEqual(await again.json(), first)
  assert.equal(handles[0].cancelled, undefined, 'no second signal')
  await app.request('/v1/runs', json({ runId: 'c-2' }))
  handles[1].finish({ state: 'succeeded', steps: 1, firstLoss: 1, lastLoss: 1, adapterDir: null, device: 'cpu', predictedPeakBytes: null, measuredPeakBytes: null })
  await new Promise((r) => setImmediate(r))
  assert.equal((await app.request('/v1/runs/c-2/cancel', { method: 'POST' })).status, 409)
  await app.request('/v1/runs/rem/events', json({ events: cannedEvents(1).slice(0, 1) }))
  const remote = await app.request('/v1/runs/rem/cancel', { method: 'POST' })
  assert.equal(remote.status, 409)
  assert.equal((await issues(remote))[0].path, 'id')
})

test('with a token every route but /healthz needs it', async () => {
  const { app } = makeApp({ token: 'secret-token' })
  assert.equal((await app.request('/healthz')).status, 200)
  for (const path of ['/metrics', '/v1/runs', '/', '/static/app.js']) {
    const res = await app.request(path)
    assert.equal(res.status, 401, path)
    assert.equal((await issues(res))[0].code, 'unauthorized')
  }
  assert.equal((await app.request('/v1/runs', { headers: { authorization: 'Bearer wrong' } })).status, 401)
  assert.equal((await app.request('/v1/runs', { headers: { authorization: 'Bearer secret-token' } })).status, 200)
  // The dashboard link: the query token sets a cookie that later requests carry.
  const page = await app.request('/?access_token=secret-token')
  assert.equal(page.status, 200)
  const cookie = page.headers.get('set-cookie') ?? ''
  assert.match(cookie, /headroom_token=secret-token.*HttpOnly.*SameSite=Strict/i)
  assert.equal((await app.request('/v1/runs', { headers: { cookie: cookie.split(';')[0] } })).status, 200)
})

test('the dashboard and uPlot are served; nothing else is', async () => {
  const { app } = makeApp()
  for (const [path, type] of [['/', 'text/html'], ['/static/app.js', 'text/javascript'], ['/static/style.css', 'text/css'], ['/static/uplot.js', 'text/javascript'], ['/static/uplot.css', 'text/css']]) {
    const res = await app.request(path)
    assert.equal(res.status, 200, path)
    assert.match(res.headers.get('content-type') ?? '', new RegExp(type), path)
  }
  assert.equal((await app.request('/static/../../package.json')).status, 404)
  assert.equal((await app.request('/static/%2e%2e/app.ts')).status, 404)
})

test('two concurrent starts of one run id start one trainer', async () => {
  const { app, handles } = makeApp()
  const [a, b] = await Promise.all([app.request('/v1/runs', json({ runId: 'twin' })), app.request('/v1/runs', json({ runId: 'twin' }))])
  assert.deepEqual([a.status, b.status].sort(), [201, 409])
  assert.equal(handles.length, 1)
})

test('an --auto-fit retry after an OOM stays one run with one done, and SSE follows it through', async () => {
  const { app, handles } = makeApp()
  await app.request('/v1/runs', json({ runId: 'refit', autoFit: true }))
  const h = handles[0]
  const first = cannedEvents(2)
  const oomDone = { ...first.at(-1)!, summary: { ...(first.at(-1) as { summary: object }).summary, state: 'oom' } } as (typeof first)[number]
  for (const e of [...first.slice(0, -1), oomDone]) h.push(e)
  const stream = Promise.resolve(app.request('/v1/runs/refit/events')).then((r: Response) => r.text())
  await new Promise((r) => setTimeout(r, 10))
  for (const e of cannedEvents(3).slice(0, -1)) h.push(e)
  h.finish({ state: 'succeeded', steps: 3, firstLoss: 2, lastLoss: 1, adapterDir: null, device: 'cuda', predictedPeakBytes: null, measuredPeakBytes: 5 })
  const types = parseSse(await stream).map((m) => m.event)
  assert.deepEqual(types, ['start', 'step', 'step', 'start', 'step', 'step', 'step', 'done'])
  const run = (await (await app.request('/v1/runs/refit')).json()) as { state: string }
  assert.equal(run.state, 'succeeded')
})
