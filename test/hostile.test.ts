/**
 * Hostile but ordinary inputs, through the real surfaces: bin/headroom as a subprocess and a
 * real `headroom server` on a socket. Each one must end in one clear line (or a 4xx JSON),
 * exit 1 or 2, in bounded time and memory, without echoing any file's content; the server
 * keeps serving meanwhile, and a 5 MB body reaches Python's urllib as a 413 JSON answer.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer, type RunningServer } from '../src/server/server.ts'

const ROOT = join(import.meta.dirname, '..')
const BIN = join(ROOT, 'bin/headroom')
const PYTHON = join(ROOT, '.venv/bin/python')
const MARKER = 'SECRET-MARKER-7f3a9c'
const isRoot = process.getuid?.() === 0

const tmp = mkdtempSync(join(tmpdir(), 'headroom-hostile-'))
const allowed = join(tmp, 'allowed')
const outside = join(tmp, 'outside')
mkdirSync(allowed)
mkdirSync(outside)
const f = {
  secret: join(outside, 'secret.txt'),
  secretJsonString: join(outside, 'secret.json'),
  fifo: join(tmp, 'fifo'),
  bigConfig: join(tmp, 'big.yaml'),
  fileAsDir: join(tmp, 'plain-file'),
  readOnly: join(tmp, 'read-only'),
  absurd: (name: string, fields: Record<string, unknown>) => {
    const p = join(allowed, `${name}.json`)
    writeFileSync(p, JSON.stringify({ model_type: 'llama', hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, vocab_size: 32000, ...fields }))
    return p
  },
}
writeFileSync(f.secret, `${MARKER} password=hunter2\n`)
writeFileSync(f.secretJsonString, JSON.stringify(MARKER))
writeFileSync(join(allowed, 'not-json.json'), `${MARKER}\n`)
writeFileSync(f.fileAsDir, 'x')
writeFileSync(f.bigConfig, `training_config:\n  LoraConfig:\n    r: 8\n${'# padding\n'.repeat(200_000)}`)
mkdirSync(f.readOnly)
chmodSync(f.readOnly, 0o555)
symlinkSync(f.secret, join(allowed, 'link-to-secret.json'))
if (spawnSync('mkfifo', [f.fifo]).status !== 0) throw new Error('mkfifo failed')

after(() => rmSync(tmp, { recursive: true, force: true }))

type Case = { name: string; args: string[]; code: 1 | 2; message: RegExp; skip?: string }

const cliCases: Case[] = [
  { name: 'check of /dev/zero', args: ['check', '/dev/zero'], code: 1, message: /\/dev\/zero: is a character device, not a regular file/ },
  { name: 'check of a FIFO', args: ['check', f.fifo], code: 1, message: /is a FIFO \(named pipe\), not a regular file/ },
  { name: 'check of a 2 MB config', args: ['check', f.bigConfig], code: 1, message: /is 1\.\d MiB, over the 1\.0 MiB limit/ },
  { name: 'check of a directory', args: ['check', tmp], code: 1, message: /is a directory: give the path of a ConfigMap/ },
  { name: 'plan --model of a secret text file', args: ['plan', '--model', f.secret], code: 2, message: /secret\.txt is not valid JSON: syntax error/ },
  { name: 'plan --model of a JSON string', args: ['plan', '--model', f.secretJsonString], code: 2, message: /must hold a JSON object, got a string/ },
  { name: 'plan --model /dev/zero', args: ['plan', '--model', '/dev/zero'], code: 1, message: /is a character device/ },
  { name: 'plan --model of a FIFO', args: ['plan', '--model', f.fifo], code: 1, message: /is a FIFO/ },
  { name: 'plan --config /dev/zero', args: ['plan', '--config', '/dev/zero'], code: 1, message: /is a character device/ },
  { name: 'config.json hidden_size 1e12', args: ['plan', '--model', f.absurd('huge', { hidden_size: 1e12 })], code: 2, message: /hidden_size=1000000000000 \(at most 131072\)/ },
  { name: 'config.json num_hidden_layers 1e9', args: ['plan', '--model', f.absurd('deep', { num_hidden_layers: 1e9 })], code: 2, message: /num_hidden_layers=1000000000 \(at most 1024\)/ },
  { name: 'config.json negative layers', args: ['plan', '--model', f.absurd('negative', { num_hidden_layers: -4 })], code: 2, message: /positive integers: num_hidden_layers=-4/ },
  { name: 'config.json fractional hidden_size', args: ['plan', '--model', f.absurd('fraction', { hidden_size: 4096.5 })], code: 2, message: /positive integers: hidden_size=4096\.5/ },
  { name: 'init -o a directory', args: ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '-o', tmp], code: 1, message: /is a directory, not a file: give a file name inside it/ },
  { name: 'init -o empty', args: ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '-o', ''], code: 2, message: /-o is empty: choose a file in a writable directory/ },
  { name: 'render -o empty', args: ['render', '--target', 'kaito', '-o', '  '], code: 2, message: /-o is empty: choose a file in a writable directory, e\.g\. -o \.\/manifests\.yaml/ },
  { name: 'init -o under a file', args: ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '-o', join(f.fileAsDir, 'x.yaml')], code: 1, message: /plain-file is a file, not a directory/ },
  { name: 'init -o under /proc', args: ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '-o', '/proc/headroom.yaml'], code: 1, message: /is on proc, a kernel pseudo-filesystem/ },
  { name: 'init -o with no parent', args: ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '-o', join(tmp, 'no/such/dir/x.yaml')], code: 1, message: /dir does not exist: create it \(mkdir -p/ },
  {
    name: 'init -o in a read-only directory',
    args: ['init', '--model', 'phi-3-mini-128k-instruct', '--gpu', 'A10', '-o', join(f.readOnly, 'x.yaml')],
    code: 1,
    message: /read-only is not writable \(permission denied\)/,
    skip: isRoot ? 'root writes through directory permissions' : undefined,
  },
  { name: 'tune --output a file', args: ['tune', '--output', f.fileAsDir, '--max-steps', '1'], code: 1, message: /plain-file: is a file, not a directory/ },
  { name: 'tune --output under /sys', args: ['tune', '--output', '/sys/headroom-run', '--max-steps', '1'], code: 1, message: /is on sys, a kernel pseudo-filesystem/ },
  { name: 'tune --output under /proc', args: ['tune', '--output', '/proc/headroom-run', '--max-steps', '1'], code: 1, message: /is on proc, a kernel pseudo-filesystem/ },
  { name: 'server --db a directory', args: ['server', '--port', '0', '--db', tmp], code: 1, message: /is a directory, not a file/ },
  { name: 'server --db under /proc', args: ['server', '--port', '0', '--db', '/proc/headroom.db'], code: 1, message: /pseudo-filesystem/ },
  { name: 'server --db a non-database file', args: ['server', '--port', '0', '--db', f.secret], code: 1, message: /--db .*secret\.txt: file is not a database/ },
  { name: 'server --allow-path a file', args: ['server', '--port', '0', '--db', join(tmp, 'h.db'), '--allow-path', f.secret], code: 1, message: /--allow-path .*: is not a directory/ },
]

describe('hostile CLI inputs: one line, exit 1 or 2, bounded time and memory, nothing echoed', () => {
  for (const c of cliCases) {
    test(c.name, { skip: c.skip }, async () => {
      // A 256 MiB heap: reading /dev/zero or a huge file without a bound would crash, not pass.
      const r = await run(c.args, 30_000, { NODE_OPTIONS: '--max-old-space-size=256' })
      assert.equal(r.timedOut, false, `${c.args.join(' ')} did not return within 30 s`)
      const all = r.stdout + r.stderr
      assert.equal(r.code, c.code, all)
      assert.match(r.stderr, c.message)
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
      assert.doesNotMatch(all, /\n\s+at |Error:/)
      assert.ok(!all.includes(MARKER) && !all.includes('hunter2'), `file content echoed: ${all}`)
    })
  }
})

describe('hostile HTTP inputs against a real server', () => {
  let server: RunningServer
  before(async () => {
    server = await startServer({ db: join(tmp, 'server.db'), port: 0, runsDir: join(tmp, 'runs'), allowPaths: [allowed], processMetrics: false })
  })
  after(() => server?.close())

  const post = (path: string, body: unknown) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  const forbidden: [string, string, unknown, string][] = [
    ['plan model: an absolute path outside', '/v1/plans', { model: f.secret }, 'model'],
    ['plan model: /etc/passwd', '/v1/plans', { model: '/etc/passwd' }, 'model'],
    ['plan model: a relative escape', '/v1/plans', { model: '../../../../../../etc/passwd' }, 'model'],
    ['plan model: a symlink inside that leads outside', '/v1/plans', { model: join(allowed, 'link-to-secret.json') }, 'model'],
    ['plan config: a path outside', '/v1/plans', { config: f.secret }, 'config'],
    ['check model: a path outside', '/v1/checks', { config: 'training_config: {}', model: f.secret }, 'model'],
    ['run model: a path outside', '/v1/runs', { model: outside }, 'model'],
    ['run data: a path outside', '/v1/runs', { data: f.secret }, 'data'],
    ['run data: a file: URL', '/v1/runs', { data: `file://${f.secret}` }, 'data'],
    ['run config: dataset_path outside', '/v1/runs', { config: `training_config:\n  DatasetConfig:\n    dataset_path: ${f.secret}\n` }, 'config.DatasetConfig.dataset_path'],
    ['run config: model path outside', '/v1/runs', { config: `training_config:\n  ModelConfig:\n    pretrained_model_name_or_path: ${outside}\n` }, 'config.ModelConfig.pretrained_model_name_or_path'],
  ]
  for (const [name, path, body, field] of forbidden) {
    test(`403: ${name}`, async () => {
      const res = await post(path, body)
      const text = await res.text()
      assert.equal(res.status, 403, text)
      const { issues } = JSON.parse(text) as { issues: { code: string; path: string; message: string }[] }
      assert.deepEqual([issues[0].code, issues[0].path], ['forbidden_path', field])
      assert.match(issues[0].message, /outside the directories this server allows/)
      assert.ok(!text.includes(MARKER), text)
    })
  }

  test('files under an allowed root are read, and their errors quote no content', async () => {
    const bad = await post('/v1/plans', { model: join(allowed, 'not-json.json') })
    const badText = await bad.text()
    assert.equal(bad.status, 400, badText)
    assert.match(badText, /is not valid JSON: syntax error/)
    assert.ok(!badText.includes(MARKER), badText)
    const absurd = await post('/v1/plans', { model: f.absurd('server-huge', { num_hidden_layers: 1e9 }) })
    assert.equal(absurd.status, 400)
    assert.match(await absurd.text(), /num_hidden_layers=1000000000/)
    const fine = await post('/v1/plans', { model: f.absurd('server-ok', {}), gpu: 'A100-80GB' })
    assert.equal(fine.status, 200, await fine.clone().text())
    assert.ok(Number.isFinite(((await fine.json()) as { peakBytes: number }).peakBytes))
  })

  test('a large check runs off the event loop: /healthz answers first, and issues are capped', async () => {
    const keys = Array.from({ length: 4000 }, (_, i) => `    bogus_key_${i}: 1\n`).join('')
    const order: string[] = []
    const check = post('/v1/checks', { config: `training_config:\n  LoraConfig:\n${keys}` }).then(async (res) => {
      order.push('check')
      return res
    })
    // Let the request reach the server before probing it.
    await new Promise((r) => setTimeout(r, 300))
    const health = await fetch(`${server.url}/healthz`)
    order.push('healthz')
    assert.equal(health.status, 200)
    const res = await check
    assert.equal(res.status, 200)
    const result = (await res.json()) as { valid: boolean; issues: { code: string; message: string }[] }
    assert.deepEqual(order, ['healthz', 'check'], 'the server answered /healthz while the check ran')
    assert.equal(result.valid, false)
    assert.equal(result.issues.length, 201)
    assert.equal(result.issues.at(-1)!.code, 'too_many_issues')
    assert.match(result.issues.at(-1)!.message, /3800 more errors not shown \(4000 in all\)/)
  })

  test('a 5 MB body gets the 413 JSON, from fetch and from Python urllib', async () => {
    const res = await post('/v1/plans', { pad: 'x'.repeat(5 * 1024 * 1024) })
    assert.equal(res.status, 413)
    assert.equal(((await res.json()) as { issues: { code: string }[] }).issues[0].code, 'body_too_large')
    const script = [
      'import json, sys, urllib.request, urllib.error',
      'body = json.dumps({"pad": "x" * (5 * 1024 * 1024)}).encode()',
      'req = urllib.request.Request(sys.argv[1] + "/v1/plans", data=body, headers={"Content-Type": "application/json"})',
      'try:',
      '    urllib.request.urlopen(req, timeout=30)',
      '    print(json.dumps({"status": 200}))',
      'except urllib.error.HTTPError as e:',
      '    print(json.dumps({"status": e.code, "body": json.loads(e.read())}))',
    ].join('\n')
    const py = await run(['-c', script, server.url], 60_000, {}, PYTHON)
    assert.equal(py.code, 0, py.stderr)
    const out = JSON.parse(py.stdout) as { status: number; body: { issues: { code: string; path: string }[] } }
    assert.equal(out.status, 413)
    assert.deepEqual([out.body.issues[0].code, out.body.issues[0].path], ['body_too_large', 'body'])
    // The server still serves after draining.
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200)
  })
})

function run(args: string[], timeoutMs: number, env: Record<string, string> = {}, bin = BIN): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, timedOut })
    })
  })
}
