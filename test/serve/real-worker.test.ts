/**
 * The Must-show of `headroom serve` against the REAL worker (python -m headroom_runtime.serve)
 * on the tiny default model and an adapter trained by `headroom tune`, with the official
 * `openai` Python SDK as the client (fixtures/sdk_client.py): models list, chat and completion,
 * streaming, greedy output that changes with the adapter, 50 concurrent requests all answered,
 * 429 beyond --max-concurrency, OpenAI-shaped 4xx as the SDK's error classes. Then /metrics
 * through `promtool check metrics` and a real Prometheus server that scrapes it and answers a
 * PromQL query, and a worker killed mid-request: 503 and exit 1 with the worker's end.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, PYTHON, ROOT, postJson, runCli } from './helpers.ts'

const TOKEN = 'serve-test-token'
const MAX_CONCURRENCY = 50
const tmp = mkdtempSync(join(tmpdir(), 'headroom-serve-'))
const adaptersDir = join(tmp, 'adapters')
const adapterDir = join(adaptersDir, 'docs')

// A short tune with a large step and no warm-up, so 3 steps move the adapter far enough that
// greedy decoding of the random-initialised tiny model changes (LoRA's B starts at zero).
const TUNE_CONFIG = `training_config:
  ModelConfig:
    torch_dtype: "float32"
    local_files_only: true
  LoraConfig:
    r: 8
    lora_alpha: 16
    lora_dropout: 0.0
    target_modules: "all-linear"
  TrainingArguments:
    per_device_train_batch_size: 4
    max_steps: 3
    learning_rate: 0.05
    warmup_steps: 0
    save_strategy: "no"
  DatasetConfig:
    train_test_split: 1
`

let serve: ChildProcess
let url = ''
let stderr = ''
let sdk: any

function startServeCli(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  // The transformers worker is what these tests are about, also on a machine where auto would pick vLLM.
  const child = spawn(BIN, ['serve', '--port', '0', '--engine', 'transformers', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen in 180 s:\n${stderr}`)), 180_000)
    child.stderr!.on('data', (d) => {
      stderr += d
      const m = /listening on (http:\/\/\S+)/.exec(stderr)
      if (m) {
        clearTimeout(timer)
        resolve({ child, url: m[1] })
      }
    })
    child.on('exit', (code) => reject(new Error(`serve exited ${code} before listening:\n${stderr}`)))
  })
}

before(async () => {
  mkdirSync(adaptersDir, { recursive: true })
  writeFileSync(join(tmp, 'tune.yaml'), TUNE_CONFIG)
  const tune = await runCli(['tune', '--config', join(tmp, 'tune.yaml'), '--output', adapterDir, '--json'], { timeoutMs: 600_000 })
  assert.equal(tune.code, 0, `headroom tune failed:\n${tune.stderr.slice(-3000)}`)
  assert.ok(existsSync(join(adapterDir, 'adapter_config.json')))
  // KAITO's layout (--adapters-dir: /mnt/adapter/<name>) and the flag, for the same weights.
  ;({ child: serve, url } = await startServeCli(['--adapters-dir', adaptersDir, '--adapter', `copy=${adapterDir}`, '--token', TOKEN, '--max-concurrency', String(MAX_CONCURRENCY)]))
  const r = spawnSync(PYTHON, [join(import.meta.dirname, 'fixtures', 'sdk_client.py'), url, TOKEN, 'docs'], { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 })
  assert.equal(r.status, 0, `sdk_client.py failed:\n${r.stderr}`)
  sdk = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
})

after(() => {
  // SIGTERM: serve stops its worker (its own process group) before exiting.
  if (serve && serve.exitCode === null) serve.kill('SIGTERM')
})

test('the SDK lists the base model and one id per adapter', () => {
  assert.deepEqual([...sdk.models].sort(), ['copy', 'default', 'docs'])
})

test('chat completions: greedy output changes when the adapter is chosen, and repeats for the same one', () => {
  const base = sdk.chat.default
  const docs = sdk.chat.docs
  assert.equal(base.object, 'chat.completion')
  assert.equal(typeof base.text, 'string')
  assert.notEqual(docs.text, base.text, 'the adapter must change greedy output')
  assert.equal(sdk.chatAgain, docs.text, 'greedy decoding is deterministic')
  for (const r of [base, docs]) {
    assert.equal(r.usage.completion_tokens, 12)
    assert.equal(r.finish, 'length')
    assert.ok(r.usage.prompt_tokens > 5)
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
  }
})

test('text completions with usage, stop and seed', () => {
  assert.equal(sdk.completion.object, 'text_completion')
  assert.ok(sdk.completion.text.length > 0)
  assert.equal(sdk.completion.usage.completion_tokens, 8)
  assert.equal(sdk.stopped.finish, 'stop')
  assert.ok(!sdk.stopped.text.includes(sdk.stopped.stop), `stop ${JSON.stringify(sdk.stopped.stop)} cut: ${JSON.stringify(sdk.stopped.text)}`)
  assert.ok(sdk.completion.text.startsWith(sdk.stopped.text))
  assert.equal(sdk.seeded[0], sdk.seeded[1], 'the same seed samples the same text')
})

test('streaming: the deltas join to the non-streamed greedy answer, one finish, usage at the end', () => {
  assert.ok(sdk.stream.deltas.length > 1, `${sdk.stream.deltas.length} deltas`)
  assert.equal(sdk.stream.deltas.join(''), sdk.chat.docs.text)
  assert.deepEqual(sdk.stream.finishes, ['length'])
  assert.equal(sdk.stream.usage.completion_tokens, 12)
})

test('50 concurrent requests are all answered', () => {
  assert.equal(sdk.fifty.length, 50)
  assert.deepEqual(sdk.fifty.filter((r: any) => !r.ok), [])
  assert.ok(sdk.fifty.every((r: any) => r.tokens === 6))
})

test(`beyond --max-concurrency ${MAX_CONCURRENCY} the SDK gets RateLimitError, and the rest are answered`, () => {
  const refused = sdk.overflow.filter((r: any) => !r.ok)
  const answered = sdk.overflow.filter((r: any) => r.ok)
  assert.ok(refused.length > 0, 'some of 80 simultaneous requests must be over the limit of 50')
  assert.ok(answered.length >= MAX_CONCURRENCY, `${answered.length} answered`)
  for (const r of refused) {
    assert.equal(r.class, 'RateLimitError')
    assert.equal(r.status, 429)
    assert.match(r.message, /limit of 50 requests in flight \(--max-concurrency\)/)
  }
})

test('bad requests raise the SDK error classes with our message', () => {
  const e = sdk.errors
  assert.equal(e.unknownModel.class, 'NotFoundError')
  assert.equal(e.unknownModel.body.code, 'model_not_found')
  assert.match(e.unknownModel.message, /The model `gpt-4o` does not exist/)
  for (const [name, param, msg] of [
    ['nTwo', 'n', /only n=1/],
    ['temperature', 'temperature', /temperature/],
    ['emptyMessages', 'messages', /at least one message/],
    ['maxTokens', 'max_tokens', /max_tokens/],
  ] as const) {
    assert.equal(e[name].class, 'BadRequestError', name)
    assert.equal(e[name].status, 400, name)
    assert.equal(e[name].body.param, param, name)
    assert.match(e[name].message, msg, name)
  }
  assert.equal(e.badKey.class, 'AuthenticationError')
  assert.equal(e.badKey.status, 401)
  assert.match(e.badKey.message, /token is not valid/)
})

test('/health answers KAITO\'s shape without a token', async () => {
  const r = await fetch(`${url}/health`)
  assert.deepEqual(await r.json(), { status: 'Healthy' })
})

test('/metrics passes promtool check metrics', async () => {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()
  assert.match(text, /^headroom_inference_requests_total\{model="docs",status="200"\} \d+/m)
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`)
})

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise((r) => srv.close(r))
  return port
}

test('a real Prometheus scrapes /metrics and answers a PromQL query on headroom_inference_*', async () => {
  const port = await freePort()
  const dir = mkdtempSync(join(tmp, 'prom-'))
  const target = new URL(url).host
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: headroom-serve\n    authorization:\n      credentials: ${TOKEN}\n    static_configs:\n      - targets: ['${target}']\n`,
  )
  const prom = spawn('/usr/bin/prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  prom.stderr!.on('data', (d) => (log += d))
  try {
    let value: number | undefined
    const query = 'sum(headroom_inference_requests_total{status="200"})'
    for (let i = 0; i < 120 && value === undefined; i++) {
      await new Promise((r) => setTimeout(r, 500))
      try {
        const res = (await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(query)}`)).json()) as any
        const v = res?.data?.result?.[0]?.value?.[1]
        if (v !== undefined) value = Number(v)
      } catch {
        // Prometheus is still starting.
      }
    }
    assert.ok(value !== undefined, `Prometheus never answered ${query}:\n${log.slice(-2000)}`)
    // 2 greedy chats + 1 again + 3 completions + 1 stream + 50 + the answered part of 80.
    assert.ok(value >= 57, `${query} = ${value}`)
    const up = (await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=up`)).json()) as any
    assert.equal(up.data.result[0].value[1], '1')
  } finally {
    prom.kill('SIGTERM')
    await new Promise((r) => prom.once('exit', r))
  }
})

test('a worker killed mid-request: the request gets 503 and serve exits 1 naming how the worker ended', async () => {
  const workerPid = Number(execFileSync('ps', ['-o', 'pid=', '--ppid', String(serve.pid)], { encoding: 'utf8' }).trim().split('\n')[0])
  assert.ok(workerPid > 0)
  const exited = new Promise<number | null>((r) => serve.once('exit', (code) => r(code)))
  const inFlight = postJson(`${url}/v1/completions`, { model: 'default', prompt: 'a long answer', max_tokens: 400, temperature: 0 }, { authorization: `Bearer ${TOKEN}` })
  await new Promise((r) => setTimeout(r, 300))
  process.kill(workerPid, 'SIGKILL')
  const r = await inFlight
  assert.equal(r.status, 503, r.text)
  assert.equal(r.json.error.code, 'worker_unavailable')
  assert.equal(await exited, 1)
  assert.match(stderr, /headroom: the inference worker stopped; requests in flight were answered 503: .*SIGKILL/)
  assert.doesNotMatch(stderr, /at .*\.ts:\d+/, 'no stack trace')
})

test('a worker that cannot start (an adapter dir without weights): serve exits 1 with the worker\'s error line', async () => {
  const broken = join(tmp, 'broken-adapters')
  mkdirSync(join(broken, 'bad'), { recursive: true })
  writeFileSync(join(broken, 'bad', 'adapter_config.json'), '{"peft_type": "LORA"}')
  const r = await runCli(['serve', '--port', '0', '--engine', 'transformers', '--adapters-dir', broken], { timeoutMs: 180_000 })
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /headroom: the inference worker did not start: .*bad/)
  assert.doesNotMatch(r.stderr, /listening on/)
})
