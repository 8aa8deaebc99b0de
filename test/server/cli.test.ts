/** `headroom server` as a process: refuses a public address without a token, serves, and stops cleanly on SIGTERM. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const BIN = join(import.meta.dirname, '../../bin/headroom')

test('a non-loopback --host without --token is a usage error (exit 2)', () => {
  const r = spawnSync(BIN, ['server', '--host', '0.0.0.0', '--port', '0'], { encoding: 'utf8', env: { ...process.env, HEADROOM_SERVER_TOKEN: '' } })
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /--host 0\.0\.0\.0 .*set --token/)
  const bad = spawnSync(BIN, ['server', '--port', 'eighty'], { encoding: 'utf8' })
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /--port must be an integer/)
})

test('the server serves until SIGTERM, then exits 0 with its store closed', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-cli-'))
  try {
    const child = spawn(BIN, ['server', '--port', '0', '--db', join(dir, 'h.db'), '--token', 'cli-test-token'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d
        const m = stderr.match(/listening on (http:\/\/\S+)/)
        if (m) resolve(m[1])
      })
      child.on('exit', () => reject(new Error(`exited early: ${stderr}`)))
    })
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal((await fetch(`${url}/healthz`)).status, 200)
    assert.equal((await fetch(`${url}/v1/runs`)).status, 401)
    assert.equal((await fetch(`${url}/v1/runs`, { headers: { authorization: 'Bearer cli-test-token' } })).status, 200)
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c))
      child.kill('SIGTERM')
    })
    assert.equal(code, 0, stderr)
    assert.match(stderr, /SIGTERM: stopping runs and closing/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
