// Python set-up planning: what is missing decides which commands run; a current venv runs none.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runtimePaths, setupCommands, setupNeeds } from '../../src/runtime/python-env.ts'
import { ensurePythonEnv } from '../../src/runtime/supervisor.ts'

function fakeRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'headroom-root-'))
  mkdirSync(join(root, 'python'), { recursive: true })
  writeFileSync(join(root, 'python', 'requirements.lock'), 'torch==2.13.0\n')
  return root
}

test('a fresh checkout needs the venv, the pinned install and the tiny model, in that order', () => {
  const paths = runtimePaths(fakeRoot())
  assert.deepEqual(setupNeeds(paths), { venv: true, assets: true })
  const commands = setupCommands(paths)
  assert.deepEqual(commands.map((c) => [c.command, ...c.args.slice(0, 2)]), [
    ['python3', '-m', 'venv'],
    [paths.python, '-m', 'pip'],
    [paths.python, '-m', 'headroom_runtime.assets'],
  ])
  assert.ok(commands[1].args.includes(paths.lockFile))
  assert.ok(commands[1].stampAfter, 'the lock is stamped into the venv only after pip succeeds')
  assert.match(commands[0].label, /^headroom: creating the Python runtime in /)
})

test('a venv built from another lock is rebuilt; a current one with assets needs nothing', () => {
  const root = fakeRoot()
  const paths = runtimePaths(root)
  mkdirSync(join(root, '.venv', 'bin'), { recursive: true })
  writeFileSync(paths.python, '')
  writeFileSync(paths.stampFile, 'torch==2.12.0\n')
  mkdirSync(paths.defaultModelDir, { recursive: true })
  writeFileSync(join(paths.defaultModelDir, 'config.json'), '{}')
  assert.deepEqual(setupNeeds(paths), { venv: true, assets: false })
  writeFileSync(paths.stampFile, 'torch==2.13.0\n')
  assert.deepEqual(setupNeeds(paths), { venv: false, assets: false })
  assert.deepEqual(setupCommands(paths), [])
})

test('ensurePythonEnv on this checkout runs nothing when the venv is current (idempotent)', { skip: setupNeeds(runtimePaths()).venv ? 'the venv here is not current' : undefined }, async () => {
  const lines: string[] = []
  const paths = await ensurePythonEnv({ onProgress: (l) => lines.push(l) })
  assert.deepEqual(lines, [])
  assert.equal(paths.python, runtimePaths().python)
})
