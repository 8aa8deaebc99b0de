/**
 * `headroom serve`'s HTTP surface against the fake worker (fixtures/fake-worker.mjs speaks the
 * worker protocol): routes, OpenAI shapes, streaming, errors, the concurrency limit, cancel on
 * disconnect, and a worker that dies. The real worker and the official SDK: openai-sdk.test.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ExitError } from '../../src/errors.ts'
import { fakeServe, postJson, sseData, FAKE_WORKER } from './helpers.ts'
import { startServe } from '../../src/serve/server.ts'
import { PHASES } from '../../src/planner/fields.ts'

test('health, models, chat and text completions answer in OpenAI shapes with usage', async () => {
  const s = await fakeServe({ adapters: [{ name: 'docs', dir: '/tmp/docs' }] })
  try {
    const health = await fetch(`${s.url}/health`)
    assert.deepEqual(await health.json(), { status: 'Healthy' })
    const models = (await (await fetch(`${s.url}/v1/models`)).json()) as any
    assert.equal(models.object, 'list')
    assert.deepEqual(models.data.map((m: any) => [m.id, m.object, m.parent]), [['tiny-phi3', 'model', null], ['docs', 'model', 'tiny-phi3']])

    const chat = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny-phi3', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, temperature: 0 })
    assert.equal(chat.status, 200, chat.text)
    assert.equal(chat.json.object, 'chat.completion')
    assert.match(chat.json.id, /^chatcmpl-/)
    assert.equal(chat.json.choices[0].message.role, 'assistant')
    assert.equal(chat.json.choices[0].message.content.trim().split(' ').length, 3)
    assert.equal(chat.json.choices[0].finish_reason, 'length')
    assert.equal(chat.json.usage.completion_tokens, 3)
    assert.equal(chat.json.usage.total_tokens, chat.json.usage.prompt_tokens + 3)

    const text = await postJson(`${s.url}/v1/completions`, { model: 'docs', prompt: 'hello', max_tokens: 4 })
    assert.equal(text.status, 200, text.text)
    assert.equal(text.json.object, 'text_completion')
    assert.equal(text.json.choices[0].text.trim().split(' ').length, 4)
    // The adapter's id reaches the worker: the fake words depend on the model id.
    const baseText = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'hello', max_tokens: 4 })
    assert.notEqual(baseText.json.choices[0].text, text.json.choices[0].text)

    const unknownFieldsIgnored = await postJson(`${s.url}/v1/completions`, { model: 'docs', prompt: 'hello', max_tokens: 1, user: 'u1', frequency_penalty: 0 })
    assert.equal(unknownFieldsIgnored.status, 200)
  } finally {
    await s.close()
  }
})

test('stream: true sends chunk objects whose deltas join to the whole answer, then [DONE]', async () => {
  const s = await fakeServe()
  try {
    const body = { model: 'tiny-phi3', messages: [{ role: 'user', content: 'stream me' }], max_tokens: 5, temperature: 0 }
    const whole = await postJson(`${s.url}/v1/chat/completions`, body)
    const res = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }) })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/)
    const data = sseData(await res.text())
    assert.equal(data.at(-1), '[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id))
    assert.equal(chunks[0].choices[0].delta.role, 'assistant')
    const joined = chunks.flatMap((c) => c.choices).map((c: any) => c.delta.content ?? '').join('')
    assert.equal(joined, whole.json.choices[0].message.content)
    const finish = chunks.flatMap((c) => c.choices).filter((c: any) => c.finish_reason)
    assert.deepEqual(finish.map((c: any) => c.finish_reason), ['length'])
    assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: whole.json.usage.prompt_tokens, completion_tokens: 5, total_tokens: whole.json.usage.prompt_tokens + 5 })

    const text = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-phi3', prompt: 'p', max_tokens: 2, stream: true }) })
    const tdata = sseData(await text.text())
    assert.equal(tdata.at(-1), '[DONE]')
    assert.ok(tdata.slice(0, -1).every((d) => JSON.parse(d).object === 'text_completion'))
  } finally {
    await s.close()
  }
})

test('stop cuts the answer and finishes with "stop"', async () => {
  const s = await fakeServe()
  try {
    const first = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'stop test', max_tokens: 6 })
    const words = first.json.choices[0].text.trim().split(' ')
    const cut = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'stop test', max_tokens: 6, stop: [words[2]] })
    assert.equal(cut.json.choices[0].finish_reason, 'stop')
    assert.equal(cut.json.choices[0].text, `${words[0]} ${words[1]} `)
  } finally {
    await s.close()
  }
})

// Table of bad requests: each answers OpenAI's error shape with the status, param and code named.
const BAD: { name: string; route: string; body: unknown; status: number; param: string | null; code: string; message: RegExp }[] = [
  { name: 'unknown model', route: 'chat/completions', body: { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }, status: 404, param: 'model', code: 'model_not_found', message: /The model `gpt-9` does not exist.*`tiny-phi3`/ },
  { name: 'no messages', route: 'chat/completions', body: { model: 'tiny-phi3' }, status: 400, param: 'messages', code: 'invalid_value', message: /messages/ },
  { name: 'empty messages', route: 'chat/completions', body: { model: 'tiny-phi3', messages: [] }, status: 400, param: 'messages', code: 'invalid_value', message: /at least one message/ },
  { name: 'bad role', route: 'chat/completions', body: { model: 'tiny-phi3', messages: [{ role: 'wizard', content: 'x' }] }, status: 400, param: 'messages.0.role', code: 'invalid_value', message: /role/ },
  { name: 'n=2', route: 'completions', body: { model: 'tiny-phi3', prompt: 'x', n: 2 }, status: 400, param: 'n', code: 'invalid_value', message: /only n=1/ },
  { name: 'max_tokens 0', route: 'completions', body: { model: 'tiny-phi3', prompt: 'x', max_tokens: 0 }, status: 400, param: 'max_tokens', code: 'invalid_value', message: /max_tokens/ },
  { name: 'temperature 3', route: 'completions', body: { model: 'tiny-phi3', prompt: 'x', temperature: 3 }, status: 400, param: 'temperature', code: 'invalid_value', message: /temperature/ },
  { name: 'top_p 0', route: 'completions', body: { model: 'tiny-phi3', prompt: 'x', top_p: 0 }, status: 400, param: 'top_p', code: 'invalid_value', message: /top_p/ },
  { name: 'no prompt', route: 'completions', body: { model: 'tiny-phi3' }, status: 400, param: 'prompt', code: 'invalid_value', message: /prompt is required/ },
  { name: 'two prompts', route: 'completions', body: { model: 'tiny-phi3', prompt: ['a', 'b'] }, status: 400, param: 'prompt', code: 'invalid_value', message: /one prompt per request/ },
  { name: 'five stops', route: 'completions', body: { model: 'tiny-phi3', prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, status: 400, param: 'stop', code: 'invalid_value', message: /at most 4/ },
  { name: 'logprobs', route: 'chat/completions', body: { model: 'tiny-phi3', messages: [{ role: 'user', content: 'x' }], logprobs: true }, status: 400, param: 'logprobs', code: 'invalid_value', message: /not supported/ },
  { name: 'model missing', route: 'completions', body: { prompt: 'x' }, status: 400, param: 'model', code: 'invalid_value', message: /model is required/ },
  { name: 'body not an object', route: 'completions', body: '[1]', status: 400, param: null, code: 'invalid_body', message: /JSON object/ },
  { name: 'malformed JSON', route: 'completions', body: '{"model":', status: 400, param: 'body', code: 'invalid_json', message: /malformed JSON/ },
  { name: 'prompt the worker refuses', route: 'completions', body: { model: 'tiny-phi3', prompt: 'BADINPUT' }, status: 400, param: null, code: 'invalid_request', message: /9000 tokens/ },
]

test('bad requests answer OpenAI-shaped 4xx naming the field', async () => {
  const s = await fakeServe()
  try {
    for (const bad of BAD) {
      const r = await postJson(`${s.url}/v1/${bad.route}`, bad.body)
      assert.equal(r.status, bad.status, `${bad.name}: ${r.text}`)
      assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type'], bad.name)
      assert.equal(r.json.error.type, 'invalid_request_error', bad.name)
      assert.equal(r.json.error.param, bad.param, bad.name)
      assert.equal(r.json.error.code, bad.code, bad.name)
      assert.match(r.json.error.message, bad.message, bad.name)
    }
    const wrongType = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' })
    assert.equal(wrongType.status, 415)
    assert.equal(((await wrongType.json()) as any).error.param, 'content-type')
    const noRoute = await fetch(`${s.url}/v1/embeddings`, { method: 'POST' })
    assert.equal(noRoute.status, 404)
    assert.match(((await noRoute.json()) as any).error.message, /POST \/v1\/chat\/completions/)
  } finally {
    await s.close()
  }
})

test('an oversized body answers 413 in the OpenAI shape', async () => {
  const s = await fakeServe({ bodyLimitBytes: 1024 })
  try {
    const r = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'x'.repeat(4096) })
    assert.equal(r.status, 413)
    assert.equal(r.json.error.code, 'body_too_large')
  } finally {
    await s.close()
  }
})

test('beyond --max-concurrency requests in flight the next is answered 429, and the slot frees after', async () => {
  const s = await fakeServe({ maxConcurrency: 2 })
  try {
    const slow = { model: 'tiny-phi3', prompt: 'SLOW', max_tokens: 3 }
    const inFlight = [postJson(`${s.url}/v1/completions`, slow), postJson(`${s.url}/v1/completions`, slow)]
    await new Promise((r) => setTimeout(r, 50))
    const third = await postJson(`${s.url}/v1/completions`, slow)
    assert.equal(third.status, 429)
    assert.equal(third.json.error.type, 'rate_limit_error')
    assert.equal(third.json.error.code, 'queue_full')
    assert.match(third.json.error.message, /limit of 2 requests in flight \(--max-concurrency\)/)
    assert.deepEqual((await Promise.all(inFlight)).map((r) => r.status), [200, 200])
    assert.equal((await postJson(`${s.url}/v1/completions`, slow)).status, 200)
    const metrics = await (await fetch(`${s.url}/metrics`)).text()
    assert.match(metrics, /headroom_inference_requests_total\{model="tiny-phi3",status="429"\} 1/)
    assert.match(metrics, /headroom_inference_requests_total\{model="tiny-phi3",status="200"\} 3/)
  } finally {
    await s.close()
  }
})

test('with --token every route but /health needs it; a wrong one is 401 invalid_api_key', async () => {
  const s = await fakeServe({ token: 'sekrit-123' })
  try {
    assert.equal((await fetch(`${s.url}/health`)).status, 200)
    const none = await fetch(`${s.url}/v1/models`)
    assert.equal(none.status, 401)
    const body = (await none.json()) as any
    assert.equal(body.error.code, 'invalid_api_key')
    assert.match(body.error.message, /Bearer/)
    assert.equal((await fetch(`${s.url}/metrics`)).status, 401)
    const wrong = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'x' }, { authorization: 'Bearer nope-nope' })
    assert.equal(wrong.status, 401)
    assert.match(wrong.json.error.message, /not valid/)
    const ok = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'x', max_tokens: 1 }, { authorization: 'Bearer sekrit-123' })
    assert.equal(ok.status, 200)
  } finally {
    await s.close()
  }
})

test('a client that hangs up mid-stream gets its request cancelled in the worker', async () => {
  const log = join(mkdtempSync(join(tmpdir(), 'serve-cancel-')), 'cancelled.txt')
  const s = await fakeServe({ env: { FAKE_CANCEL_LOG: log }, maxConcurrency: 1 })
  try {
    const ac = new AbortController()
    const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-phi3', prompt: 'SLOW', max_tokens: 50, stream: true }), signal: ac.signal })
    const reader = res.body!.getReader()
    await reader.read() // the first token is out: the request is decoding
    ac.abort()
    for (let i = 0; i < 50 && !existsSync(log); i++) await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['r1'])
    // Its slot is free again (max-concurrency 1).
    const next = await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'x', max_tokens: 1 })
    assert.equal(next.status, 200)
  } finally {
    await s.close()
  }
})

test('a worker that dies: requests in flight get 503, later ones too, and `ended` carries its error line', async () => {
  const s = await fakeServe()
  const slow = postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'SLOW', max_tokens: 20 })
  await new Promise((r) => setTimeout(r, 50))
  const crash = postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'CRASH' })
  const [a, b] = await Promise.all([slow, crash])
  for (const r of [a, b]) {
    assert.equal(r.status, 503, r.text)
    assert.equal(r.json.error.type, 'server_error')
    assert.equal(r.json.error.code, 'worker_unavailable')
    assert.match(r.json.error.message, /simulated crash/)
  }
  const ended = await s.ended
  assert.ok(ended)
  assert.equal(ended.worker.code, 3)
  assert.match(ended.worker.reason, /simulated crash: CUDA error/)
})

test('a worker that cannot start rejects startServe with its own message (exit code 1)', async () => {
  await assert.rejects(
    startServe({ port: 0, worker: { command: process.execPath, args: [FAKE_WORKER] }, env: { FAKE_FAIL_START: 'adapter "docs": /nope has no adapter_config.json' }, onLog: () => {} }),
    (err: unknown) => err instanceof ExitError && err.exitCode === 1 && /did not start: adapter "docs": \/nope has no adapter_config.json/.test(err.message),
  )
})

test('/metrics holds the headroom_inference_* series with values from requests and worker stats', async () => {
  const s = await fakeServe()
  try {
    await postJson(`${s.url}/v1/completions`, { model: 'tiny-phi3', prompt: 'm', max_tokens: 5 })
    const text = await (await fetch(`${s.url}/metrics`)).text()
    for (const name of ['requests_total', 'time_to_first_token_seconds', 'time_per_output_token_seconds', 'tokens_per_second', 'queue_depth', 'running_sequences', 'memory_allocated_bytes', 'memory_reserved_bytes']) {
      assert.match(text, new RegExp(`^# TYPE headroom_inference_${name.replace(/_total$/, '_total')} `, 'm'), name)
    }
    assert.match(text, /^headroom_inference_time_to_first_token_seconds_count\{model="tiny-phi3"\} 1$/m)
    assert.match(text, /^headroom_inference_time_per_output_token_seconds_count\{model="tiny-phi3"\} 1$/m)
    assert.match(text, /^headroom_inference_memory_allocated_bytes 1000$/m)
    assert.match(text, /^headroom_inference_memory_reserved_bytes 2000$/m)
    const tps = Number(/^headroom_inference_tokens_per_second (\S+)$/m.exec(text)?.[1])
    assert.ok(tps > 0, `tokens/s ${tps}`)
  } finally {
    await s.close()
  }
})

test("the predicted-memory gauge: the planner's inference peak where the planner has that phase, absent (never 0) where not", async () => {
  const s = await fakeServe({ maxConcurrency: 4, adapters: [{ name: 'docs', dir: '/tmp/docs' }] })
  try {
    const text = await (await fetch(`${s.url}/metrics`)).text()
    const line = /^headroom_inference_memory_predicted_bytes (\S+)$/m.exec(text)
    if ((PHASES as readonly string[]).includes('inference')) {
      assert.ok(line, 'the planner plans inference: the gauge must be there')
      // The tiny Phi-3's fp32 weights alone are ~16 MB; 4 sequences of 512 positions add KV cache.
      assert.ok(Number(line[1]) > 16e6 && Number(line[1]) < 2e9, line[1])
      assert.match(text, /for 4 sequences of 512 tokens/)
    } else {
      assert.equal(line, null, 'no inference phase in the planner: nothing to export')
    }
  } finally {
    await s.close()
  }
})
