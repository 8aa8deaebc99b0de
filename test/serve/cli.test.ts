/**
 * `headroom serve`'s command line through bin/headroom as a subprocess: usage errors (exit 2)
 * and input errors (exit 1) are one line, no stack trace, and nothing starts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nvidiaGpuNames } from '../../src/runtime/device.ts'
import { runCli } from './helpers.ts'

const empty = mkdtempSync(join(tmpdir(), 'serve-cli-'))

const CASES: { args: string[]; code: number; message: RegExp }[] = [
  { args: ['--host', '0.0.0.0'], code: 2, message: /--host 0\.0\.0\.0 exposes the model to the network: set --token/ },
  { args: ['--token', 'short'], code: 2, message: /--token must be at least 8 characters/ },
  { args: ['--port', 'http'], code: 2, message: /--port must be an integer from 0 to 65535, got "http"/ },
  { args: ['--max-concurrency', '0'], code: 2, message: /--max-concurrency must be a whole number of requests, 1 or more, got "0"/ },
  { args: ['--adapter', 'docs'], code: 2, message: /--adapter docs: expected NAME=DIR/ },
  { args: ['--adapter', 'a/b=/tmp'], code: 2, message: /the name "a\/b" must be letters, digits/ },
  { args: ['--adapter', `docs=${join(empty, 'missing')}`], code: 1, message: /--adapter docs=.*missing: no such directory/ },
  { args: ['--adapter', `docs=${empty}`], code: 1, message: /no adapter_config\.json there/ },
  { args: ['--adapters-dir', join(empty, 'missing')], code: 1, message: /--adapters-dir .*missing: no such directory/ },
  { args: ['--engine', 'tgi'], code: 2, message: /argument 'tgi' is invalid.*auto, transformers, vllm/ },
]

test('bad serve flags: one clear line, the documented exit code, no stack trace', async () => {
  for (const c of CASES) {
    const r = await runCli(['serve', ...c.args])
    assert.equal(r.code, c.code, `${c.args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, c.message, c.args.join(' '))
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
    assert.doesNotMatch(r.stderr, /listening on/)
  }
})

test('--engine vllm where vLLM cannot run exits 1 saying why', async (t) => {
  if (nvidiaGpuNames().length > 0) return t.skip('this machine has a GPU: whether vLLM runs depends on its install')
  const r = await runCli(['serve', '--engine', 'vllm'], { timeoutMs: 120_000 })
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /--engine vllm cannot run here: .*no NVIDIA GPU is present.*Use --engine transformers/)
})

test('serve is listed in the help', async () => {
  const r = await runCli(['--help'])
  assert.match(r.stdout, /serve\s+serve the model and its adapters over an OpenAI-compatible API/)
})
